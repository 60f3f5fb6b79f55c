"""`mote sim` (the virtual board) and `mote demo` (the guided tour on it)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from ..sim import VirtualBoard
from .common import user_errors


@click.command()
@click.option("--board", "-b", default="sim", show_default=True, help="Board name (e.g. pico_w, sim; see boards/) or a board file (.json).")
@click.option("--seed", type=int, default=1, show_default=True, help="Sensor stream and device id seed.")
@click.option("--baud", type=click.IntRange(min=300), default=None,
              help="Pace the link like a UART at this baud rate (8N1); default: unpaced pty speed.")
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory holding the board's flash (default ~/.cache/motekit/sim/BOARD-SEED).")
@click.option("--fresh", is_flag=True, help="Erase the board's flash first.")
@click.option("--blank", is_flag=True,
              help="A stock MicroPython board: erase the flash, install no firmware, boot to the REPL "
                   "(for `mote install`).")
@click.option("--link", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also make this symlink to the port (a stable name across restarts, like /dev/serial/by-id).")
@click.option("--ble", "ble", is_flag=True,
              help="Give the board a radio: its BLE peripheral (the firmware's own code) is registered "
                   "with this machine's BlueZ (a real advertising peripheral on a Linux laptop).")
@click.option("--virtual-radio", is_flag=True,
              help="With --ble: no Bluetooth hardware; start a private D-Bus with BlueZoo and print "
                   "`export DBUS_SYSTEM_BUS_ADDRESS=...` as the second line.")
@click.option("--ble-adapter", default=None, help="With --ble: the BlueZ adapter the board uses (default hci0; "
                                                   "hci1 with --virtual-radio, hci0 being the host's).")
@click.option("--ble-pairing", "ble_pairing", multiple=True, metavar="ADDR",
              help="With --ble: this central pairs when it connects (repeatable). The rig cannot pair: the sim's "
                   "stack stands in for a security manager; the board keeps the bond only inside a pairing "
                   "window (`mote pair --port P`).")
@click.option("--trace", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Replay this accelerometer trace (CSV t,x,y,z,event in g, as `mote power simulate`) in a loop.")
@click.option("--battery", type=click.FloatRange(0, 100), default=None,
              help="Run on the simulated battery at this state of charge (%) instead of USB power.")
@click.option("--emulate", is_flag=True,
              help="Run the firmware on an emulated core standing in for the board's MCU (MicroPython's qemu "
                   "port: Cortex-M0 for pico_w, Cortex-M4F for the nRF52840 boards and pico2_w), heap as "
                   "the board file says, firmware as .mpy for its arch (docs/emulation.md).")
@click.option("--impl", type=click.Choice(["micropython", "circuitpython"]), default=None,
              help="The interpreter: MicroPython's unix port, or CircuitPython 10.2.1's built board-like from "
                   "pinned source (once, ~15 s). Default: what the board file runs (`firmware`).")
def sim(board, seed, baud, state, fresh, blank, link, ble, virtual_radio, ble_adapter, ble_pairing, trace, battery,
        emulate, impl):
    """Run a virtual board: the firmware in MicroPython's (or CircuitPython's) unix port behind a pseudo-terminal.

    The first line of stdout is the port to use with --port; runs until interrupted.
    """
    rig = None
    with user_errors():
        bridge = None
        if emulate and ble:
            raise click.UsageError("--emulate has no radio: leave out --ble", click.get_current_context())
        if virtual_radio and not ble:
            raise click.UsageError("--virtual-radio goes with --ble", click.get_current_context())
        if ble_pairing and not ble:
            raise click.UsageError("--ble-pairing goes with --ble", click.get_current_context())
        if ble:
            try:
                from ..sim.ble_bridge import Bridge
            except ImportError:
                raise click.ClickException("--ble needs the `ble` extra: pip install 'motekit[ble]'") from None
            if virtual_radio:
                from ..ble.rig import Rig, RigError
                rig = Rig()
                try:
                    rig.start()
                except RigError as e:
                    raise click.ClickException(str(e)) from None
                bridge = Bridge(rig.address, ble_adapter or rig.board_adapter(1), rig=True,
                                log_fn=lambda m: click.echo(f"mote sim: {m}", err=True))
            else:
                bridge = Bridge(None, ble_adapter or "hci0", rig=False,
                                log_fn=lambda m: click.echo(f"mote sim: {m}", err=True))
        if emulate:
            if impl == "circuitpython":
                raise click.ClickException("--emulate runs MicroPython's qemu port: leave out --impl circuitpython "
                                           "(CircuitPython runs as its unix port)")
            vb = _emulated(board, seed, state, baud, link, fresh, blank, ble, trace, battery)
        else:
            try:
                vb = VirtualBoard(board=board, seed=seed, state_dir=state, baud=baud, link=link, fresh=fresh,
                                  ble=bridge, blank=blank, ble_pairing=ble_pairing, trace=trace, battery=battery,
                                  impl=impl)
            except ValueError as e:
                if rig:
                    rig.stop()
                raise click.ClickException(str(e)) from None
        try:
            port = vb.start()
        except Exception as e:
            if emulate:
                from ..builds import BuildError
                if isinstance(e, BuildError):
                    raise click.ClickException(str(e).splitlines()[0]) from None
            if rig:
                rig.stop()
            if bridge is not None and not isinstance(e, FileNotFoundError):
                raise click.ClickException(f"cannot register the board with BlueZ: {e}") from None
            raise
    click.echo(port)
    if rig:
        click.echo(f"export DBUS_SYSTEM_BUS_ADDRESS={rig.address}")
    sys.stdout.flush()
    click.echo(f"mote sim: board {board!r} ({getattr(vb, 'impl', 'micropython')}) seed {seed} on {port}"
               + (f" paced at {baud} baud" if baud else "") + (" (blank flash)" if blank else "") + f"; flash in {vb.flash}; Ctrl-C stops", err=True)

    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    try:
        vb.wait()
    except KeyboardInterrupt:
        pass
    finally:
        vb.stop()
        if rig:
            rig.stop()
    click.echo("mote sim: stopped", err=True)


def _emulated(board, seed, state, baud, link, fresh, blank, ble, trace, battery):
    """The board on an emulated core (motekit.emu.board), or one line saying why not."""
    if ble:
        raise click.ClickException("--emulate has no radio: leave out --ble")
    from ..emu import NoCore
    from ..emu.board import EmulatedBoard
    try:
        return EmulatedBoard(board=board, seed=seed, state_dir=state, baud=baud, link=link, fresh=fresh,
                             blank=blank, trace=trace, battery=battery)
    except NoCore as e:
        raise click.ClickException(str(e)) from None
