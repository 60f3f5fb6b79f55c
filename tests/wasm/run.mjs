// Run Python code under the official MicroPython webassembly port (no native/viper emitter).
//   node run.mjs SPEC.json
// SPEC: {"files": {"/lib/mote/infer.py": "/abs/host/path", ...}, "code": "python source", "heap": bytes}
// Files are copied into the port's in-memory filesystem; "code" runs with /lib on sys.path.
import { readFileSync } from "node:fs";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
let out = "";
const mp = await loadMicroPython({
  heapsize: spec.heap || 8 * 1024 * 1024,
  stdout: (line) => { out += line + "\n"; },
  stderr: (line) => { out += line + "\n"; },
  linebuffer: true,
});
const made = new Set();
for (const [dst, src] of Object.entries(spec.files)) {
  const parts = dst.split("/").filter(Boolean);
  let p = "";
  for (const d of parts.slice(0, -1)) {
    p += "/" + d;
    if (!made.has(p)) { try { mp.FS.mkdir(p); } catch (e) { /* exists */ } made.add(p); }
  }
  mp.FS.writeFile(dst, readFileSync(src));
}
let rc = 0;
try {
  mp.runPython("import sys\nsys.path.insert(0, '/lib')\n" + spec.code);
} catch (e) {
  out += "PYTHON ERROR: " + e.message + "\n";
  rc = 1;
}
process.stdout.write(out);
process.exit(rc);
