"""Make the small "exported" models of tests/data/exported/ with the real TensorFlow Lite converter, trained on
the public M5StickC gesture recordings (../shared/vectors/accel/gestures_m5stickc.csv, MIT, read in place).

Not run by the tests (TensorFlow is not a motekit dependency): run once, by hand, in an environment with
tensorflow-cpu 2.15 and numpy<2, and commit the .tflite files it writes (each well under 200 KB):

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 "numpy<2"
    /tmp/tfenv/bin/python tools/make_exported_models.py

What each model stands for (the families of issue 15, as the converter writes them by default):
  accel_float_io   float32 input and output around an int8 graph (QUANTIZE first, DEQUANTIZE last), with
                   LEAKY_RELU, HARD_SWISH, RESIZE_NEAREST_NEIGHBOR, TRANSPOSE, MUL, SUB, MAXIMUM, MEAN
  accel_uint8_io   the same network exported with uint8 input and output (QUANTIZE uint8<->int8 at the edges)
  accel_lstm       a Keras LSTM (16 units) over the window, fully int8 (UNIDIRECTIONAL_SEQUENCE_LSTM with int8
                   activations and weights, int16 cell state), int8 input and output
"""

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
from motekit.model import gesture_data  # noqa: E402

OUT = ROOT / "tests" / "data" / "exported"


def dataset():
    recs = gesture_data.m5stickc()
    acts = sorted({a for a, _ in recs.values()})
    X, y = [], []
    for act, counts in recs.values():
        w = gesture_data.windows(counts)
        X.append(w)
        y += [acts.index(act)] * len(w)
    X = np.concatenate(X).astype(np.float32) / 16384.0          # g
    X = X - X.mean(axis=1, keepdims=True)                        # per-window mean removed, as on the device
    return X, np.array(y), acts


def hard_swish(x):
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def network(n_classes):
    x = tf.keras.Input((gesture_data.WINDOW, 3), name="accel")
    h = tf.keras.layers.Reshape((gesture_data.WINDOW, 1, 3))(x)
    h = tf.keras.layers.Conv2D(8, (5, 1), padding="same")(h)
    h = tf.keras.layers.LeakyReLU(0.1)(h)
    h = tf.keras.layers.MaxPooling2D((2, 1))(h)
    h = tf.keras.layers.DepthwiseConv2D((3, 1), padding="same")(h)
    h = tf.keras.layers.Lambda(hard_swish)(h)
    h = tf.keras.layers.UpSampling2D((1, 2), interpolation="nearest")(h)     # [25, 2, 8]
    h = tf.keras.layers.Permute((2, 1, 3))(h)                                 # [2, 25, 8]
    h = tf.keras.layers.Conv2D(12, (1, 3), strides=(1, 2), activation="relu")(h)
    h = tf.keras.layers.GlobalAveragePooling2D()(h)
    a = tf.keras.layers.Dense(16)(h)
    g = tf.keras.layers.Dense(16, activation="sigmoid")(h)
    m = tf.keras.layers.Multiply()([a, g])
    s = tf.keras.layers.Subtract()([a, m])
    h = tf.keras.layers.Maximum()([m, s])
    out = tf.keras.layers.Dense(n_classes, activation="softmax", name="probs")(h)
    return tf.keras.Model(x, out)


def lstm_network(n_classes):
    x = tf.keras.Input((gesture_data.WINDOW, 3), batch_size=1, name="accel")
    h = tf.keras.layers.LSTM(16)(x)
    out = tf.keras.layers.Dense(n_classes, activation="softmax", name="probs")(h)
    return tf.keras.Model(x, out)


def convert(model, rep, io_type=None):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([r[None]] for r in rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io_type is not None:
        conv.inference_input_type = io_type
        conv.inference_output_type = io_type
    return conv.convert()


def main():
    tf.keras.utils.set_random_seed(15)
    X, y, acts = dataset()
    rng = np.random.default_rng(15)
    idx = rng.permutation(len(X))
    X, y = X[idx], y[idx]
    model = network(len(acts))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, y, epochs=30, batch_size=32, verbose=0, validation_split=0.2)
    acc = model.evaluate(X, y, verbose=0)[1]
    print(f"{len(X)} windows, classes {acts}, float accuracy {acc:.2f}")
    OUT.mkdir(parents=True, exist_ok=True)
    rep = X[:200]
    for name, io in (("accel_float_io", None), ("accel_uint8_io", tf.uint8)):
        data = convert(model, rep, io)
        (OUT / f"{name}.tflite").write_bytes(data)
        print(f"{name}.tflite: {len(data)} bytes")
    lstm = lstm_network(len(acts))
    lstm.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    lstm.fit(X, y, epochs=30, batch_size=1, verbose=0)
    print(f"LSTM float accuracy {lstm.evaluate(X, y, batch_size=1, verbose=0)[1]:.2f}")
    data = convert(lstm, rep, tf.int8)
    (OUT / "accel_lstm.tflite").write_bytes(data)
    print(f"accel_lstm.tflite: {len(data)} bytes")


if __name__ == "__main__":
    main()
