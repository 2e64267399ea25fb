# xenlab: the summary (stderr) and the --json object (stdout), from the files the run left in $XL_OUT.
# Returns 0 only when every selected scenario passed.
xl_report() {
    XL_SCENARIOS="$XL_SCENARIOS" XL_FATAL="${XL_FATAL:-}" XL_XEN_VERSION="${XL_XEN_VERSION:-}" XL_KVER="${XL_KVER:-}" \
    XL_ACCEL="${XL_ACCEL:-tcg}" XL_T0="$XL_T0" python3 - "$XL_OUT" "$1" <<'PY'
import json, os, sys, time
out, want_json = sys.argv[1], sys.argv[2] == "1"
def read(p, default=""):
    try:
        with open(os.path.join(out, p), errors="replace") as f: return f.read().strip()
    except OSError: return default
info = {}
for line in read("xl-info.txt").splitlines():
    k, _, v = line.partition(":")
    info[k.strip()] = v.strip()
xen_version = info.get("xen_version") or os.environ["XL_XEN_VERSION"]
failures, scenarios = [], []
fatal = os.environ.get("XL_FATAL") or read("fatal")
for name in os.environ["XL_SCENARIOS"].split():
    d = os.path.join("scenarios", name)
    figures = {}
    for line in read(os.path.join(d, "figures")).splitlines():
        k, _, v = line.partition("=")
        try: figures[k] = int(v) if v.isdigit() else float(v)
        except ValueError: figures[k] = v
    passed = os.path.exists(os.path.join(out, d, "passed"))
    ran = os.path.exists(os.path.join(out, d, "ms"))
    error = read(os.path.join(d, "error")) or (None if passed else ("did not run: " + fatal if fatal else "did not run"))
    ms = read(os.path.join(d, "ms"))
    scenarios.append({"name": name, "passed": passed, "seconds": round(int(ms) / 1000, 1) if ms else None,
                      "figures": figures, "error": error, "log": os.path.join(out, d, "log") if ran else None})
    if not passed: failures.append(f"{name}: {error}")
if fatal: failures.insert(0, fatal)
steps = {}
for line in read("steps").splitlines():
    k, _, v = line.partition(" ")
    steps[k] = int(v)
markers = {}
for line in read("console.log").replace("\r", "").splitlines():
    if "XENLAB-STEP " in line:
        parts = line.split("XENLAB-STEP ", 1)[1].split()
        if len(parts) == 2: markers[parts[0] + "_uptime_s"] = float(parts[1])
starts = [float(l.split()[0]) for l in read("serve-starts").splitlines() if l.strip()]
result = {
    "xen_version": xen_version, "xen_package": os.environ["XL_XEN_VERSION"], "dom0_kernel": read("dom0-kernel.txt") or os.environ["XL_KVER"],
    "accel": os.environ["XL_ACCEL"], "passed": not failures, "seconds": int(time.time()) - int(os.environ["XL_T0"]),
    "host_steps_s": steps, "dom0_boot": markers, "blktap_serve_start_s": starts,
    "scenarios": scenarios, "failures": failures, "output": out,
}
with open(os.path.join(out, "result.json"), "w") as f: json.dump(result, f, indent=2)
for s in scenarios:
    print(f"xenlab: {'PASS' if s['passed'] else 'FAIL'} {s['name']:<11} {s['seconds'] if s['seconds'] is not None else '-':>6} s  "
          + " ".join(f"{k}={v}" for k, v in s["figures"].items()) + ("" if s["passed"] else f"  ({s['error']})"), file=sys.stderr)
print(f"xenlab: {sum(s['passed'] for s in scenarios)} passed, {sum(not s['passed'] for s in scenarios)} failed; "
      f"Xen {xen_version} ({result['accel']}), {result['seconds']} s; output {out}", file=sys.stderr)
if want_json: print(json.dumps(result))
sys.exit(0 if not failures else 1)
PY
}
