#!/usr/bin/env bash
# Validates everything under deploy/ without a cluster and without Docker:
#
#   1. renders the kustomizations (deploy/kubernetes, base, forward-auth,
#      workload-identity) with
#      kustomize (`kubectl kustomize`, or `kustomize`, or one built with
#      `go install` from the Go module proxy);
#   2. lints (strict) and renders the Helm chart with each deploy/helm/tollgate/ci/*-values.yaml
#      through Helm's own Go engine (the helm-python-sdk wheel from PyPI
#      ships it as a shared library), and checks the chart's
#      values.schema.json: a valid draft-07 schema that describes every key
#      of values.yaml, which values.yaml and every ci/*-values.yaml satisfy
#      (with jsonschema), and which Helm applies (bad values are refused);
#   3. validates every rendered object against the Kubernetes OpenAPI JSON
#      schemas of the oldest supported and the newest release, strictly
#      (unknown fields are errors), with kubernetes-validate from PyPI, which
#      ships the schemas: nothing is downloaded at validation time;
#   4. checks what schemas cannot: references between objects (volumes,
#      Service and Ingress backends, selectors, ports, ServiceMonitor and
#      PodMonitor targets, the forward-auth annotations the chart's NOTES
#      print), the sidecar shape, probes, hardening, the shutdown time
#      budget, and runs `tollgate check-config` on every generated
#      tollgate.toml;
#   5. checks the Dockerfile statically (it is not built here), its OCI
#      labels included;
#   6. checks the Grafana dashboard deploy/grafana/tollgate.json: valid JSON,
#      the ${DS_PROMETHEUS} data source input, and only metric names that
#      docs/metrics.md documents;
#   7. checks that docs/ingress.md's ingress-nginx example says what
#      deploy/kubernetes/forward-auth/ingress.yaml says (auth annotations,
#      overwritten headers, the /oauth2/ route);
#   8. checks deploy/systemd/tollgate.service with systemd-analyze (verify,
#      and an offline security exposure of at most 2.0), where it exists.
#
# Tools are installed into a cache outside the repository
# (${TOLLGATE_DEPLOY_CACHE:-~/.cache/tollgate-deploy}). Exit status: 0 when
# everything passed, 1 otherwise. What this does NOT check is printed at the
# end and listed in docs/deployment.md.
#
# Environment:
#   TOLLGATE_BIN          tollgate binary for check-config (default: the newer
#                         of target/release/tollgate and target/debug/tollgate)
#   KUBE_VERSIONS         schema versions (default: "1.30.0 1.37.0")
#   TOLLGATE_DEPLOY_CACHE tool cache directory
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${TOLLGATE_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-deploy}
KUBE_VERSIONS=${KUBE_VERSIONS:-"1.30.0 1.37.0"}
# Pinned tools. kubernetes-validate 1.37 ships the schemas of Kubernetes
# 1.20 to 1.37; helm-python-sdk 0.2.2 embeds Helm v4.2.3.
PY_REQUIREMENTS=(kubernetes-validate==1.37.0 helm-python-sdk==0.2.2)
KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5@v5.8.1

started=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-deploy.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
failed=0
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; failed=1; }

# ---------------------------------------------------------------- tools
step "tools (cache: $CACHE)"
mkdir -p "$CACHE"

python=
for p in python3.13 python3.12 python3.11 python3; do
  if command -v "$p" >/dev/null 2>&1 &&
     "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=$(command -v "$p")
    break
  fi
done
[ -n "$python" ] || { echo "FAIL: needs Python 3.11 or newer (tomllib)"; exit 1; }

venv_key=$(printf '%s\n' "$("$python" -c 'import sys; print(sys.version)')" "${PY_REQUIREMENTS[@]}" |
  sha256sum | cut -c1-12)
VENV=$CACHE/venv-$venv_key
if [ ! -f "$VENV/.complete" ]; then
  echo "installing ${PY_REQUIREMENTS[*]} into $VENV"
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input "${PY_REQUIREMENTS[@]}"
  touch "$VENV/.complete"
fi
PY=$VENV/bin/python
"$PY" -c 'import kubernetes_validate, helm_python, yaml, tomllib' ||
  { echo "FAIL: the tool venv $VENV is broken; delete it and run again"; exit 1; }
echo "python: $("$PY" --version), kubernetes-validate $("$VENV/bin/kubernetes-validate" --version | awk '{print $NF}'), helm $("$PY" -c 'import helm_python as h; print(h.helm_sdk_version())') (helm-python-sdk)"

# kustomize: kubectl's built-in one if it is v5, else a kustomize binary,
# else build one from the Go module proxy into the cache.
kustomize=()
if command -v kubectl >/dev/null 2>&1 &&
   kubectl version --client 2>/dev/null | grep -q 'Kustomize Version: v5'; then
  kustomize=(kubectl kustomize)
  echo "kustomize: $(kubectl version --client 2>/dev/null | grep Kustomize) (kubectl)"
elif command -v kustomize >/dev/null 2>&1 && kustomize version 2>/dev/null | grep -q '^v5'; then
  kustomize=(kustomize build)
  echo "kustomize: $(kustomize version)"
else
  if [ ! -x "$CACHE/bin/kustomize" ]; then
    command -v go >/dev/null 2>&1 || { echo "FAIL: no kubectl, kustomize or go to get kustomize"; exit 1; }
    echo "building $KUSTOMIZE_MODULE into $CACHE/bin"
    GOBIN=$CACHE/bin GOTOOLCHAIN=local go install "$KUSTOMIZE_MODULE"
  fi
  kustomize=("$CACHE/bin/kustomize" build)
  echo "kustomize: $("$CACHE/bin/kustomize" version) (built)"
fi

tollgate=${TOLLGATE_BIN:-}
if [ -z "$tollgate" ]; then
  for b in "$ROOT/target/release/tollgate" "$ROOT/target/debug/tollgate"; do
    if [ -x "$b" ] && { [ -z "$tollgate" ] || [ "$b" -nt "$tollgate" ]; }; then tollgate=$b; fi
  done
fi
if [ -n "$tollgate" ]; then
  echo "tollgate: $tollgate ($("$tollgate" --version))"
elif [ -n "${CI:-}" ]; then
  echo "FAIL: no tollgate binary for check-config (build first, or set TOLLGATE_BIN)"; exit 1
else
  echo "tollgate: no binary (build first or set TOLLGATE_BIN): check-config is SKIPPED"
fi

# ---------------------------------------------------------------- render
step "render"
renders=()  # "label|file|secret-source|external secrets"
render_kustomize() {  # dir label
  local out=$WORK/kustomize-$2.yaml
  if "${kustomize[@]}" "$ROOT/$1" >"$out" 2>"$WORK/err"; then
    echo "ok   kustomize $1"
    renders+=("kustomize $1|$out|generated|")
  else
    fail "kustomize $1: $(cat "$WORK/err")"
  fi
}
render_kustomize deploy/kubernetes root
render_kustomize deploy/kubernetes/base base
render_kustomize deploy/kubernetes/forward-auth forward-auth
render_kustomize deploy/kubernetes/workload-identity workload-identity

CHART=$ROOT/deploy/helm/tollgate
# Lint and render with Helm's engine. Lists each render in $WORK/helm.list
# as "label|output|secret source|external Secret".
: >"$WORK/helm.list"
if ! "$PY" - "$CHART" "$WORK" <<'PY'
import glob, os, sys, yaml
import helm_python as helm

chart_dir, work = sys.argv[1], sys.argv[2]
listing = open(os.path.join(work, "helm.list"), "w")
bad = False
values_files = sorted(glob.glob(os.path.join(chart_dir, "ci", "*-values.yaml")))
if not values_files:
    print("FAIL: no ci/*-values.yaml in the chart")
    sys.exit(1)
with helm.Chart.load(chart_dir) as chart:
    # Without the required values the chart must refuse to render.
    try:
        chart.render({}, name="release", namespace="ns", is_install=True)
        print("FAIL: the chart renders without config.publicUrl/issuer/clientId/secret")
        bad = True
    except helm.HelmError as e:
        print(f"ok   helm: refuses to render without the required values ({str(e).splitlines()[0][:70]}...)")
    # values.schema.json is applied, and the templates' own checks hold.
    minimal = yaml.safe_load(open(os.path.join(chart_dir, "ci", "default-values.yaml")))
    for what, extra, want in [
        ("an unknown mode", {"mode": "proxy"}, "mode"),
        ("an unknown key", {"replicas": 2}, "replicas"),
        ("a metrics port that is not a number", {"metrics": {"port": "metrics"}}, "port"),
        ("a client_auth the chart cannot serve", {"config": {"clientAuth": "private_key_jwt"}}, "clientAuth"),
        ("a ServiceMonitor without metrics.enabled", {"metrics": {"serviceMonitor": {"enabled": True}}}, "metrics.enabled"),
        ("a PodMonitor without metrics.enabled", {"metrics": {"podMonitor": {"enabled": True}}}, "metrics.enabled"),
    ]:
        values = {**minimal, **{k: ({**minimal.get(k, {}), **v} if isinstance(v, dict) else v) for k, v in extra.items()}}
        try:
            chart.render(values, name="release", namespace="ns", is_install=True)
            print(f"FAIL: the chart renders with {what}")
            bad = True
        except helm.HelmError as e:
            if want not in str(e):
                print(f"FAIL: the chart refuses {what}, but not naming {want!r}: {str(e)[:200]}")
                bad = True
            else:
                print(f"ok   helm: refuses {what}")
    for vf in values_files:
        name = os.path.basename(vf)
        values = yaml.safe_load(open(vf)) or {}
        report = helm.lint(chart_dir, values, strict=True, kube_version="v1.30.0")
        problems = report.get("errors", []) + [
            f"{m['path']}: {m['error']}" for m in report.get("messages", []) if m["severity"] >= 2
        ]
        if problems:
            print(f"FAIL: helm lint --strict with {name}: " + "; ".join(problems))
            bad = True
            continue
        try:
            manifests = chart.render(values, name="release", namespace="ns", is_install=True)
        except helm.HelmError as e:
            print(f"FAIL: helm template with {name}: {e}")
            bad = True
            continue
        docs = [m for path, m in sorted(manifests.items()) if not path.endswith("NOTES.txt")]
        if not any(path.endswith("NOTES.txt") and text.strip() for path, text in manifests.items()):
            print(f"FAIL: NOTES.txt renders empty with {name}")
            bad = True
        out = os.path.join(work, "helm-" + name.replace("-values.yaml", "") + ".yaml")
        with open(out, "w") as f:
            f.write("\n---\n".join(docs))
        with open(out[:-len(".yaml")] + ".NOTES.txt", "w") as f:
            f.write("".join(t for p, t in manifests.items() if p.endswith("NOTES.txt")))
        external = (values.get("secret") or {}).get("existingSecret") or ""
        print(f"ok   helm lint --strict + template, {name}")
        print(f"helm {name}|{out}|rendered|{external}", file=listing)
sys.exit(1 if bad else 0)
PY
then failed=1; fi
while IFS= read -r line; do renders+=("$line"); done <"$WORK/helm.list"

# ---------------------------------------------------------------- values schema
step "Helm values schema (values.schema.json)"
if ! "$PY" - "$CHART" <<'PY'
import glob, json, os, sys
import yaml

chart_dir = sys.argv[1]
bad = []
try:
    schema = json.load(open(os.path.join(chart_dir, "values.schema.json")))
except (OSError, ValueError) as e:
    print(f"FAIL: values.schema.json: {e}")
    sys.exit(1)
defaults = yaml.safe_load(open(os.path.join(chart_dir, "values.yaml"))) or {}

def merged(base, over):
    """Helm's merge of a values file over the chart's values: maps deeply, the rest replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out

# Every key of values.yaml is described (with a type) wherever the schema
# lists an object's properties; maps passed through verbatim are "type: object"
# without properties and are not descended into.
def covered(values, node, path):
    for k, v in values.items():
        sub = (node.get("properties") or {}).get(k)
        where = f"{path}.{k}".lstrip(".")
        if sub is None:
            bad.append(f"values.yaml key {where} is not in values.schema.json")
            continue
        if "type" not in sub and "enum" not in sub:
            bad.append(f"values.schema.json: {where} has no type")
        if not sub.get("description"):
            bad.append(f"values.schema.json: {where} has no description")
        if isinstance(v, dict) and "properties" in sub:
            covered(v, sub, where)
covered(defaults, schema, "")
if schema.get("$schema") != "http://json-schema.org/draft-07/schema#":
    bad.append("values.schema.json does not declare JSON Schema draft-07")

docs = [("values.yaml", defaults)] + [
    (os.path.relpath(f, chart_dir), merged(defaults, yaml.safe_load(open(f)) or {}))
    for f in sorted(glob.glob(os.path.join(chart_dir, "ci", "*-values.yaml")))]
try:
    import jsonschema
except ImportError:
    jsonschema = None
if jsonschema:
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        print(f"FAIL: values.schema.json is not a valid draft-07 schema: {e.message}")
        sys.exit(1)
    validator = jsonschema.Draft7Validator(schema)
    for name, values in docs:
        for e in validator.iter_errors(values):
            bad.append(f"{name}: {e.json_path}: {e.message}")
    from importlib.metadata import version
    how = f"jsonschema {version('jsonschema')}"
else:
    # A small structural check: types, enums, unknown keys, array items.
    types = {"object": dict, "array": list, "string": str, "boolean": bool,
             "integer": int, "number": (int, float), "null": type(None)}
    def check(v, node, where):
        ts = node.get("type")
        ts = [ts] if isinstance(ts, str) else ts or []
        if ts and not any(isinstance(v, types[t]) and not (t in ("integer", "number") and isinstance(v, bool))
                          for t in ts):
            bad.append(f"{where}: {v!r} is not {'/'.join(ts)}")
            return
        if "enum" in node and v not in node["enum"]:
            bad.append(f"{where}: {v!r} is not one of {node['enum']}")
        if isinstance(v, dict):
            props = node.get("properties") or {}
            extra = node.get("additionalProperties", True)
            for k, sub in v.items():
                if k in props:
                    check(sub, props[k], f"{where}.{k}")
                elif extra is False:
                    bad.append(f"{where}: unknown key {k}")
                elif isinstance(extra, dict):
                    check(sub, extra, f"{where}.{k}")
        if isinstance(v, list) and isinstance(node.get("items"), dict):
            for n, item in enumerate(v):
                check(item, node["items"], f"{where}[{n}]")
    for name, values in docs:
        check(values, schema, name)
    how = "structural check: no jsonschema module"
for b in bad:
    print("FAIL: " + b)
if not bad:
    print(f"ok   values.schema.json describes every key of values.yaml; values.yaml and "
          f"{len(docs) - 1} ci/*-values.yaml (merged over it) satisfy it ({how})")
sys.exit(1 if bad else 0)
PY
then failed=1; fi

# ---------------------------------------------------------------- schemas
files=()
for r in "${renders[@]}"; do IFS='|' read -r _ f _ _ <<<"$r"; files+=("$f"); done
for v in $KUBE_VERSIONS; do
  step "JSON schemas of Kubernetes $v (strict)"
  if "$VENV/bin/kubernetes-validate" --strict --no-warn -k "$v" "${files[@]}" >"$WORK/kv.out" 2>&1; then
    echo "ok   $(grep -c ' passed ' "$WORK/kv.out") objects in ${#files[@]} renders"
  else
    grep -v ' passed ' "$WORK/kv.out" | sed "s|$WORK/||g"
    fail "schema validation against Kubernetes $v"
  fi
done

# ---------------------------------------------------------------- semantics
step "references, sidecar, probes, hardening, shutdown budget, tollgate check-config"
if ! "$PY" - "$ROOT" "$WORK" "$tollgate" "${renders[@]}" <<'PY'
import base64, os, re, subprocess, sys, tomllib
import yaml

root, work, tollgate, specs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
errors = []

def err(where, msg):
    errors.append(f"{where}: {msg}")

def duration_s(text):
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)", text):
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total

def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

def ports_of(pod):
    out = {}
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        for p in c.get("ports", []):
            out[p["containerPort"]] = c
    return out

def secret_data(obj):
    data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    data.update(obj.get("stringData") or {})
    return data

def check_config(where, toml_text, env_list, files, expect_ok=True, expect_in=""):
    """Runs tollgate check-config on toml_text with the *_file keys pointed
    at files (key -> content), in an environment holding only PATH and the
    container's literal TOLLGATE_* variables."""
    d = os.path.join(work, "cc-" + re.sub(r"\W+", "-", where))
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "tollgate.toml")
    open(cfg, "w").write(toml_text)
    env = {"PATH": os.environ["PATH"]}
    for e in env_list:
        if "value" in e:
            env[e["name"]] = str(e["value"])
    for key, content in files.items():
        path = os.path.join(d, key.replace(".", "_"))
        open(path, "w").write(content)
        env["TOLLGATE_" + key.upper().replace(".", "__")] = path
    r = subprocess.run([tollgate, "check-config", "--config", cfg], env=env,
                       capture_output=True, text=True, timeout=30)
    out = (r.stdout + r.stderr).strip()
    if expect_ok and r.returncode != 0:
        err(where, "tollgate check-config refused the generated tollgate.toml:\n    " + out.replace("\n", "\n    "))
    if not expect_ok and (r.returncode == 0 or expect_in not in out):
        err(where, f"tollgate check-config should refuse it (mentioning {expect_in!r}); got exit {r.returncode}: {out[:300]}")
    return r.returncode

def probe_port(probe):
    for k in ("httpGet", "tcpSocket", "grpc"):
        if k in probe:
            return probe[k].get("port")

def check_render(label, path, secrets_from, external):
    objs = [o for o in yaml.safe_load_all(open(path)) if o]
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    cms, secrets = by_kind.get("ConfigMap", {}), by_kind.get("Secret", {})
    services = by_kind.get("Service", {})
    # Objects of a Helm render carry no namespace: they go to the release's
    # ("ns" in the renders above).
    default_ns = "ns" if label.startswith("helm ") else None
    def ns_of(o):
        return o["metadata"].get("namespace") or default_ns
    metrics_port = {}  # Deployment name -> port of metrics.listen

    def check_auth_annotations(where, ann):
        url = ann.get("nginx.ingress.kubernetes.io/auth-url", "")
        m = re.match(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)/oauth2/auth$", url)
        svc = services.get(m.group(1)) if m else None
        if not m or not svc or ns_of(svc) != m.group(2) \
                or int(m.group(3)) not in [sp["port"] for sp in svc["spec"]["ports"]]:
            err(where, f"auth-url {url} is not tollgate's Service in this render")
        hdrs = ann.get("nginx.ingress.kubernetes.io/auth-proxy-set-headers", "")
        ns, _, cm = hdrs.partition("/")
        want = {"X-Forwarded-Uri", "X-Forwarded-Method"}
        if cm not in cms or ns_of(cms[cm]) != ns \
                or not want <= set(cms[cm].get("data") or {}):
            err(where, "auth-proxy-set-headers must name a ConfigMap of this render "
                "(namespace/name) that overrides X-Forwarded-Uri and X-Forwarded-Method")
    external = {e for e in external.split(",") if e}
    pods = {n: d["spec"]["template"] for n, d in by_kind.get("Deployment", {}).items()}
    if not pods:
        err(label, "no Deployment")
    found_tollgate = False

    for name, tpl in pods.items():
        where = f"{label}: Deployment/{name}"
        pod = tpl["spec"]
        labels = tpl["metadata"].get("labels", {})
        dep = by_kind["Deployment"][name]
        if not matches(dep["spec"]["selector"].get("matchLabels", {}), labels):
            err(where, "selector does not match the pod template's labels")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for v in volumes.values():
            if "configMap" in v and v["configMap"]["name"] not in cms:
                err(where, f"volume {v['name']}: no ConfigMap {v['configMap']['name']} in the render")
            if "secret" in v and v["secret"]["secretName"] not in secrets and v["secret"]["secretName"] not in external:
                err(where, f"volume {v['name']}: no Secret {v['secret']['secretName']} in the render")
        containers = pod.get("initContainers", []) + pod.get("containers", [])
        for c in containers:
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    err(where, f"container {c['name']} mounts unknown volume {m['name']}")
        tg = [c for c in containers if c["name"] == "tollgate"]
        if not tg:
            continue
        found_tollgate = True
        c = tg[0]
        in_init = c in pod.get("initContainers", [])
        if in_init and c.get("restartPolicy") != "Always":
            err(where, "tollgate is an init container without restartPolicy: Always (not a sidecar)")
        if in_init and not pod.get("containers"):
            err(where, "sidecar without an app container")
        # hardening (pod and tollgate container)
        psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
        if pod.get("enableServiceLinks") is not False:
            err(where, "enableServiceLinks must be false (TOLLGATE_* service variables are read as keys)")
        if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
            err(where, "runAsNonRoot is not set")
        if (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            err(where, "seccompProfile RuntimeDefault is not set")
        if csc.get("allowPrivilegeEscalation") is not False:
            err(where, "tollgate: allowPrivilegeEscalation must be false")
        if csc.get("readOnlyRootFilesystem") is not True:
            err(where, "tollgate: readOnlyRootFilesystem must be true")
        if "ALL" not in (csc.get("capabilities") or {}).get("drop", []):
            err(where, "tollgate: capabilities must drop ALL")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            if not (res.get(kind) or {}).get("memory"):
                err(where, f"tollgate: resources.{kind}.memory is not set")
        # probes
        http_ports = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == "http"]
        if not http_ports:
            err(where, "tollgate has no port named http")
            continue
        port = http_ports[0]
        want = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
        for probe, path_ in want.items():
            p = c.get(probe)
            if not p:
                err(where, f"tollgate: no {probe}")
            elif p.get("httpGet", {}).get("path") != path_ or probe_port(p) not in (port, "http"):
                err(where, f"tollgate: {probe} must GET {path_} on port {port}")
        # configuration
        args = c.get("args", [])
        cfg_path = args[args.index("--config") + 1] if "--config" in args else None
        if not cfg_path:
            err(where, "tollgate is started without --config")
            continue
        cfg_dir, cfg_file = os.path.split(cfg_path)
        mounts = {m["mountPath"].rstrip("/"): m for m in c.get("volumeMounts", [])}
        m = mounts.get(cfg_dir)
        cm_name = volumes.get(m["name"], {}).get("configMap", {}).get("name") if m else None
        if not cm_name or cm_name not in cms or cfg_file not in (cms[cm_name].get("data") or {}):
            err(where, f"--config {cfg_path} is not a key of a mounted ConfigMap")
            continue
        text = cms[cm_name]["data"][cfg_file]
        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            err(where, f"ConfigMap {cm_name} {cfg_file} is not valid TOML: {e}")
            continue
        listen = cfg.get("server", {}).get("listen", "0.0.0.0:4180")
        if not listen.endswith(f":{port}"):
            err(where, f"server.listen {listen} is not the container port {port}")
        metrics = cfg.get("metrics", {}).get("listen")
        if metrics and int(metrics.rsplit(":", 1)[1]) not in [p["containerPort"] for p in c.get("ports", [])]:
            err(where, f"metrics.listen {metrics} is not a container port of tollgate")
        if metrics:
            metrics_port[name] = int(metrics.rsplit(":", 1)[1])
            # The pod shares one network namespace: the metrics port must not
            # be one the app (or tollgate's main listener) wants.
            others = [p["containerPort"] for cc in containers if cc is not c for p in cc.get("ports", [])]
            up = re.match(r"https?://127\.0\.0\.1:(\d+)", cfg.get("upstream", {}).get("url", ""))
            if metrics_port[name] in others + [port] + ([int(up.group(1))] if up else []):
                err(where, f"metrics.listen {metrics} collides with a port of the app or of tollgate")
        # shutdown budget: the app's preStop, then tollgate's grace
        grace = duration_s(cfg.get("server", {}).get("shutdown_grace", "10s"))
        pre = [cc.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
               for cc in containers]
        budget = pod.get("terminationGracePeriodSeconds", 30)
        if max(pre, default=0) + grace > budget:
            err(where, f"preStop sleep {max(pre)}s + shutdown_grace {grace:g}s exceeds terminationGracePeriodSeconds {budget}s")
        # secret files: every *_file must be a key of the mounted Secret
        files = {}
        for section, key in (("provider", "client_secret_file"), ("session", "secret_file"),
                             ("session.redis", "password_file")):
            node = cfg
            for part in section.split("."):
                node = node.get(part, {})
            fpath = node.get(key)
            if not fpath:
                continue
            sdir, skey = os.path.split(fpath)
            sm = mounts.get(sdir)
            sname = volumes.get(sm["name"], {}).get("secret", {}).get("secretName") if sm else None
            if not sname:
                err(where, f"{section}.{key} = {fpath} is not in a mounted Secret")
                continue
            if sname in secrets:
                data = secret_data(secrets[sname])
                if skey not in data:
                    err(where, f"{section}.{key}: Secret {sname} has no key {skey}")
                    continue
                value = data[skey] if secrets_from == "rendered" else None
            else:
                value = None  # an existing Secret, not part of the render
            if value is None:
                value = {"secret_file": base64.b64encode(os.urandom(32)).decode(),
                         "password_file": "ci-redis-password"}.get(key, "ci-client-secret")
            files[f"{section}.{key}"] = value
        # client_assertion_file: a projected service-account token of the
        # pod's own (non-default) service account, for an explicit audience.
        fpath = cfg.get("provider", {}).get("client_assertion_file")
        if fpath:
            tdir, tkey = os.path.split(fpath)
            tm = mounts.get(tdir)
            vol = volumes.get(tm["name"], {}) if tm else {}
            sat = [s["serviceAccountToken"] for s in (vol.get("projected") or {}).get("sources", [])
                   if "serviceAccountToken" in s and s["serviceAccountToken"].get("path") == tkey]
            sa = pod.get("serviceAccountName", "default")
            if not sat:
                err(where, f"provider.client_assertion_file = {fpath} is not a serviceAccountToken of a mounted projected volume")
            elif not sat[0].get("audience"):
                err(where, "the projected token of provider.client_assertion_file has no audience (it would be one the API server accepts)")
            elif not tm.get("readOnly"):
                err(where, "the projected token of provider.client_assertion_file is not mounted readOnly")
            elif sa == "default" or sa not in by_kind.get("ServiceAccount", {}):
                err(where, f"serviceAccountName {sa} is not a ServiceAccount of the render (never `default`)")
            # check-config only needs the file to exist; the payload is a JWT shape.
            files["provider.client_assertion_file"] = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjR9.c2ln"
        if tollgate:
            check_config(where, text, c.get("env", []), files)
            # The example Secrets hold placeholders that must stop tollgate.
            if secrets_from == "generated" and "session.secret_file" in files:
                fpath = cfg["session"]["secret_file"]
                sm = mounts[os.path.dirname(fpath)]
                sname = volumes[sm["name"]]["secret"]["secretName"]
                if sname in secrets:
                    placeholder = dict(files)
                    placeholder["session.secret_file"] = secret_data(secrets[sname])[os.path.basename(fpath)]
                    check_config(where + " (example Secret)", text, c.get("env", []), placeholder,
                                 expect_ok=False, expect_in="session.secret")

    if not found_tollgate:
        err(label, "no container named tollgate")

    # Services, PDBs, NetworkPolicies, Ingresses point at something real.
    for name, svc in by_kind.get("Service", {}).items():
        where = f"{label}: Service/{name}"
        sel = svc["spec"].get("selector", {})
        targets = [t for t in pods.values() if matches(sel, t["metadata"].get("labels", {}))]
        if not targets:
            err(where, "selector matches no pod template")
            continue
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            for t in targets:
                if isinstance(tp, str):
                    init_names = [q.get("name") for c in t["spec"].get("initContainers", []) for q in c.get("ports", [])]
                    if tp in init_names:
                        err(where, f"targetPort {tp!r} names a sidecar port (not resolved before Kubernetes 1.32): use the number")
                elif tp not in ports_of(t["spec"]):
                    err(where, f"targetPort {tp} is no container port of the pods")
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for name, o in by_kind.get(kind, {}).items():
            sel = (o["spec"].get("selector") or o["spec"].get("podSelector") or {}).get("matchLabels", {})
            hit = [t for t in pods.values() if matches(sel, t["metadata"].get("labels", {}))]
            if not hit:
                err(f"{label}: {kind}/{name}", "selector matches no pod template")
            if kind == "NetworkPolicy":
                for rule in o["spec"].get("ingress", []):
                    for p in rule.get("ports", []):
                        if not any(p["port"] in ports_of(t["spec"]) for t in hit):
                            err(f"{label}: {kind}/{name}", f"port {p['port']} is no container port of the pods")
    for name, ing in by_kind.get("Ingress", {}).items():
        for rule in ing["spec"].get("rules", []):
            for p in rule.get("http", {}).get("paths", []):
                b = p["backend"]["service"]
                svc = services.get(b["name"])
                if not svc:
                    err(f"{label}: Ingress/{name}", f"backend Service {b['name']} is not in the render")
                elif b["port"].get("number") not in [sp["port"] for sp in svc["spec"]["ports"]]:
                    err(f"{label}: Ingress/{name}", f"Service {b['name']} has no port {b['port']}")
        ann = ing["metadata"].get("annotations", {})
        if ann.get("nginx.ingress.kubernetes.io/auth-url"):
            check_auth_annotations(f"{label}: Ingress/{name}", ann)

    # The chart in forward-auth mode does not own the app's Ingress: its NOTES
    # print the annotations to put there. They must name this render's objects.
    notes_path = path[:-len(".yaml")] + ".NOTES.txt"
    if os.path.exists(notes_path):
        notes = open(notes_path).read()
        ann = dict(re.findall(r'^\s*(nginx\.ingress\.kubernetes\.io/[a-z-]+):\s*"([^"]*)"\s*$', notes, re.M))
        forward_auth = any(c["name"] == "tollgate" for t in pods.values() for c in t["spec"].get("containers", []))
        if forward_auth and not ann.get("nginx.ingress.kubernetes.io/auth-url"):
            err(f"{label}: NOTES.txt", "forward-auth mode, but NOTES.txt prints no auth-url annotation")
        elif ann.get("nginx.ingress.kubernetes.io/auth-url"):
            check_auth_annotations(f"{label}: NOTES.txt", ann)

    # Prometheus Operator monitors (no CRD schema here: checked by hand).
    tollgate_ports = {}  # pod template name -> {port name: number} of the tollgate container
    for n, t in pods.items():
        for c in t["spec"].get("initContainers", []) + t["spec"].get("containers", []):
            if c["name"] == "tollgate":
                tollgate_ports[n] = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    for kind in ("ServiceMonitor", "PodMonitor"):
        for name, mon in by_kind.get(kind, {}).items():
            where = f"{label}: {kind}/{name}"
            if mon.get("apiVersion") != "monitoring.coreos.com/v1":
                err(where, f"apiVersion {mon.get('apiVersion')} is not monitoring.coreos.com/v1")
            sel = (mon["spec"].get("selector") or {}).get("matchLabels", {})
            eps = mon["spec"].get("endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints") or []
            if not eps:
                err(where, "no endpoints")
            for ep in eps:
                if ep.get("path", "/metrics") != "/metrics":
                    err(where, f"path {ep['path']} is not /metrics")
            if kind == "PodMonitor":
                hit = [n for n, t in pods.items() if matches(sel, t["metadata"].get("labels", {}))]
                if not hit:
                    err(where, "selector matches no pod template")
                for ep in eps:
                    for n in hit:
                        if tollgate_ports.get(n, {}).get(ep.get("port")) != metrics_port.get(n):
                            err(where, f"port {ep.get('port')!r} is not tollgate's metrics port in Deployment/{n}")
                continue
            hit = [s for s in services.values() if matches(sel, s["metadata"].get("labels", {}))]
            if not hit:
                err(where, "selector matches no Service")
            for svc in hit:
                targets = [n for n, t in pods.items() if matches(svc["spec"].get("selector", {}), t["metadata"].get("labels", {}))]
                for ep in eps:
                    sp = [p for p in svc["spec"]["ports"] if p.get("name") == ep.get("port")]
                    if not sp:
                        err(where, f"Service {svc['metadata']['name']} has no port named {ep.get('port')!r}")
                        continue
                    for n in targets:
                        if sp[0].get("targetPort", sp[0]["port"]) != metrics_port.get(n):
                            err(where, f"Service {svc['metadata']['name']} port {ep.get('port')} does not reach "
                                f"tollgate's metrics.listen in Deployment/{n}")
                if any(p.get("name") == "http" for p in svc["spec"]["ports"]):
                    err(where, f"Service {svc['metadata']['name']} also carries the user-facing port: keep metrics on a Service of their own")

for spec in specs:
    label, path, secrets_from, external = spec.split("|")
    n = len(errors)
    check_render(label, path, secrets_from, external)
    print(("ok   " if len(errors) == n else "FAIL ") + label)

# The Dockerfile, statically.
df_path = os.path.join(root, "deploy", "Dockerfile")
df = open(df_path).read()
stages = re.findall(r"^FROM\s+(\S+)", df, re.M)
args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", df, re.M))
final = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), stages[-1]) if stages else ""
for ok, msg in [
    (len(stages) >= 2, "is not multi-stage"),
    ("distroless" in final and final.endswith(":nonroot"), f"final stage {final} is not a distroless :nonroot image"),
    (re.search(r"^USER\s+65532(:65532)?\s*$", df, re.M), "does not set USER 65532"),
    (re.search(r"^EXPOSE\s+4180\s*$", df, re.M), "does not EXPOSE 4180"),
    ("cargo build --release --locked" in df, "does not build with cargo build --release --locked"),
    (re.search(r'^ENTRYPOINT\s+\["[^"]*tollgate"\]', df, re.M), "ENTRYPOINT is not tollgate"),
    ("/etc/tollgate/tollgate.toml" in df, "does not default to /etc/tollgate/tollgate.toml"),
]:
    if not ok:
        err("deploy/Dockerfile", msg)
# OCI labels, in the final stage (labels of the build stage are not inherited).
last = df[[m.start() for m in re.finditer(r"^FROM\s", df, re.M)][-1]:] if stages else ""
labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z]+)="([^"]*)"', last))
final_args = set(re.findall(r"^ARG\s+(\w+)", last, re.M))
for key, want in [("title", "tollgate"), ("licenses", "Apache-2.0")]:
    if labels.get(f"org.opencontainers.image.{key}") != want:
        err("deploy/Dockerfile", f"final stage: label org.opencontainers.image.{key} is not {want!r}")
if not labels.get("org.opencontainers.image.description"):
    err("deploy/Dockerfile", "final stage: no label org.opencontainers.image.description")
for key, arg in [("version", "VERSION"), ("revision", "REVISION"), ("source", "SOURCE")]:
    if labels.get(f"org.opencontainers.image.{key}") != "${%s}" % arg or arg not in final_args:
        err("deploy/Dockerfile", f"final stage: label org.opencontainers.image.{key} is not set from ARG {arg}")
# Build context: every COPY source exists and survives .dockerignore.
ignore = [l.strip() for l in open(os.path.join(root, ".dockerignore")) if l.strip() and not l.startswith("#")]
def ignored(rel):
    import fnmatch
    out = False
    for pat in ignore:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        parts = rel.split("/")
        if any(fnmatch.fnmatch("/".join(parts[:i]), pat) for i in range(1, len(parts) + 1)):
            out = not neg
    return out
for srcs in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+\s*$", df, re.M):
    for s in srcs.split():
        if not os.path.exists(os.path.join(root, s)):
            err("deploy/Dockerfile", f"COPY source {s} does not exist")
        elif ignored(s.rstrip("/")) or (os.path.isdir(os.path.join(root, s)) and ignored(s.rstrip("/") + "/main.rs")):
            err("deploy/Dockerfile", f"COPY source {s} is excluded by .dockerignore")
print(("ok   " if not any(e.startswith("deploy/Dockerfile") for e in errors) else "FAIL ") + "deploy/Dockerfile (static)")

for e in errors:
    print("FAIL: " + e)
sys.exit(1 if errors else 0)
PY
then failed=1; fi

# ---------------------------------------------------------------- grafana
step "Grafana dashboard"
if ! "$PY" - "$ROOT" <<'PY'
import json, os, re, sys

root = sys.argv[1]
path = os.path.join(root, "deploy", "grafana", "tollgate.json")
bad = []
try:
    dash = json.load(open(path))
except (OSError, ValueError) as e:
    print(f"FAIL: deploy/grafana/tollgate.json: {e}")
    sys.exit(1)
# Metric names that exist: the ones docs/metrics.md documents.
doc = open(os.path.join(root, "docs", "metrics.md")).read()
known = set(re.findall(r"`((?:tollgate|process)_[a-z_]+)", doc))
inputs = {i.get("name"): i for i in dash.get("__inputs", [])}
if (inputs.get("DS_PROMETHEUS") or {}).get("pluginId") != "prometheus":
    bad.append("no __inputs entry DS_PROMETHEUS for the prometheus plugin")
panels = dash.get("panels", [])
for p in panels:
    panels.extend(p.get("panels", []))  # panels inside collapsed rows
ids = [p.get("id") for p in panels]
if len(ids) != len(set(ids)):
    bad.append("panel ids are not unique")
exprs = []
for p in panels:
    if p.get("type") == "row":
        continue
    for t in p.get("targets", []):
        exprs.append((p.get("title"), t.get("expr", "")))
    for ds in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]:
        if (ds or {}).get("uid") != "${DS_PROMETHEUS}":
            bad.append(f"panel {p.get('title')!r}: data source is not ${{DS_PROMETHEUS}}")
if not exprs:
    bad.append("no queries")
for var in dash.get("templating", {}).get("list", []):
    if var.get("type") == "query":
        exprs.append((f"variable {var.get('name')}", var.get("definition", "")))
used = set()
for title, e in exprs:
    if e.count("(") != e.count(")") or e.count("{") != e.count("}"):
        bad.append(f"{title}: unbalanced brackets in {e}")
    for name in re.findall(r"\b((?:tollgate|process)_[a-z_]+)", e):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        used.add(base)
        if name not in known and base not in known:
            bad.append(f"{title}: {name} is not a metric documented in docs/metrics.md")
for b in bad:
    print("FAIL: deploy/grafana/tollgate.json: " + b)
if not bad:
    print(f"ok   deploy/grafana/tollgate.json: {len(exprs)} queries on {len(used)} documented metrics, "
          "data source ${DS_PROMETHEUS}")
sys.exit(1 if bad else 0)
PY
then failed=1; fi

# ------------------------------------------------- docs vs manifests
# docs/ingress.md shows the ingress-nginx setup inline; what tollgate's side
# depends on (the auth annotations, the headers nginx must overwrite, the
# route to /oauth2/) must say what deploy/kubernetes/forward-auth says.
step "docs/ingress.md agrees with deploy/kubernetes/forward-auth"
if ! "$PY" - "$ROOT" <<'PY'
import os, re, sys
import yaml

root = sys.argv[1]
doc = open(os.path.join(root, "docs", "ingress.md")).read()
section = doc.split("## ingress-nginx", 1)[1]
block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
documented = [d for d in yaml.safe_load_all(block) if d]
shipped = [d for d in yaml.safe_load_all(open(os.path.join(
    root, "deploy", "kubernetes", "forward-auth", "ingress.yaml"))) if d]

def norm(v):
    return str(v).replace("<ns>", "NAMESPACE")

def auth(objs):
    """The auth annotations, the overwritten headers, the /oauth2 route."""
    out = {}
    for o in objs:
        if o["kind"] == "ConfigMap":
            out["ConfigMap data"] = {k: norm(v) for k, v in o["data"].items()}
        if o["kind"] != "Ingress":
            continue
        notes = o["metadata"].get("annotations") or {}
        for k, v in notes.items():
            if k.startswith("nginx.ingress.kubernetes.io/auth-"):
                out[k] = norm(v)
        for rule in o["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                b = p["backend"]["service"]
                if b["name"] == "tollgate":
                    out["route to tollgate"] = (p["path"], p["pathType"], b["port"]["number"])
    return out

d, s = auth(documented), auth(shipped)
bad = [f"{k}: docs/ingress.md has {d.get(k)!r}, ingress.yaml has {s.get(k)!r}"
       for k in sorted(set(d) | set(s)) if d.get(k) != s.get(k)]
for b in bad:
    print("FAIL: " + b)
if not bad:
    print(f"ok   {len(s)} settings agree (auth annotations, overwritten headers, /oauth2/ route)")
sys.exit(1 if bad else 0)
PY
then failed=1; fi

# ---------------------------------------------------------------- systemd
step "systemd unit"
unit=$ROOT/deploy/systemd/tollgate.service
sd_checked=
if command -v systemd-analyze >/dev/null 2>&1; then
  sd_checked=1
  # verify wants an executable ExecStart: the built binary, else /bin/true.
  mkdir -p "$WORK/systemd"
  sed "s|/usr/local/bin/tollgate|${tollgate:-/bin/true}|" "$unit" >"$WORK/systemd/tollgate.service"
  if out=$(cd "$WORK/systemd" && systemd-analyze verify tollgate.service 2>&1) && [ -z "$out" ]; then
    echo "ok   systemd-analyze verify (no unknown or invalid directives)"
  else
    fail "systemd-analyze verify deploy/systemd/tollgate.service: ${out:-exit status}"
  fi
  if out=$(cd "$WORK/systemd" && systemd-analyze security --offline=yes --threshold=20 tollgate.service 2>&1); then
    echo "ok   systemd-analyze security: $(grep -o 'exposure level.*' <<<"$out")"
  else
    fail "systemd-analyze security: exposure above 2.0: $(grep -o 'exposure level.*' <<<"$out")"
  fi
else
  echo "SKIPPED: no systemd-analyze"
fi

# ---------------------------------------------------------------- summary
step "not checked here"
cat <<'EOF'
- Nothing is applied to a cluster: admission (PodSecurity, webhooks, quotas),
  scheduling, image pulls, and the pods actually starting are not tested.
- The ingress-nginx annotations are checked for their references only; no
  ingress controller runs them (tollgate's /oauth2/auth itself is tested
  behind plain nginx auth_request by the Rust tests).
- The container image is not built (no Docker engine here): the Dockerfile is
  checked statically; its cargo build, base images, final image and the
  multi-arch (buildx) build are not.
- ServiceMonitor and PodMonitor are checked for their references only: there
  is no schema of the Prometheus Operator's CRDs here, and no Prometheus.
- The Grafana dashboard is checked as JSON, for its data source input and its
  metric names; no Grafana loads it and its PromQL is not evaluated.
- Provider reachability, real secrets and TLS are not exercised:
  check-config validates the configuration without contacting the provider.
EOF
[ -n "$tollgate" ] || echo "- tollgate check-config was SKIPPED: no tollgate binary."
[ -n "$sd_checked" ] || echo "- the systemd unit was not checked: no systemd-analyze."
echo "- The systemd unit is checked offline (verify, security score), not run."

elapsed=$((SECONDS - started))
if [ "$failed" -ne 0 ]; then
  printf '\ndeploy/validate.sh: FAILED (%ss)\n' "$elapsed"
  exit 1
fi
printf '\ndeploy/validate.sh: all checks passed (%ss)\n' "$elapsed"
