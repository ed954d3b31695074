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
#      overwritten headers, the routes to tollgate), and that ingress.yaml
#      and the Ingress the Helm chart renders in forward-auth mode route
#      exactly tollgate's browser paths to it, never /oauth2/auth or
#      /oauth2/ext_authz/... (and that the chart's notes list those paths);
#   8. validates deploy/kubernetes/gateways/*.yaml (Gateway API, Envoy
#      Gateway, Istio, Traefik) against the CRD schemas of pinned releases,
#      fetched once through the Go module proxy (`go mod download`) and kept
#      under the cache, strictly (additionalProperties: false wherever a CRD
#      lists an object's properties), the core objects with
#      kubernetes-validate, Istio's mesh config against its MeshConfig
#      protobuf definition, and the references (tollgate's Service of
#      forward-auth, /oauth2/ext_authz and /oauth2/auth, the identity headers
#      copied to the app, the checked app route, and the unchecked route to
#      tollgate, which matches exactly its browser paths and neither
#      /oauth2/auth nor /oauth2/ext_authz/..., as Istio's exclusions).
#      Without the module proxy the schema part is SKIPPED, except in CI (CI
#      set), where it fails;
#   9. checks that docs/ingress.md's snippets of deploy/kubernetes/gateways
#      are the objects of those files;
#  10. checks deploy/systemd/tollgate.service with systemd-analyze (verify,
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
# CRDs for deploy/kubernetes/gateways, from the Go module proxy. Envoy Gateway
# v1.9.1 and Traefik v3.7.13 both build on Gateway API v1.6.1.
GATEWAY_API_MODULE=sigs.k8s.io/gateway-api@v1.6.1
ENVOY_GATEWAY_MODULE=github.com/envoyproxy/gateway@v1.9.1
ISTIO_API_MODULE=istio.io/api@v1.32.0
TRAEFIK_MODULE=github.com/traefik/traefik/v3@v3.7.13
# tollgate's browser paths: in forward-auth mode the only ones routed to it
# from outside, each exactly (steps 7 and 8, for ingress.yaml, the chart's
# forward-auth Ingress and deploy/kubernetes/gateways; step 8 compares them
# with the paths src/gateway/router.rs serves; the chart's
# templates/forward-auth.yaml lists them too). Never /oauth2/auth or
# /oauth2/ext_authz/<path>, the checks: they answer a proxy in
# server.trusted_proxies with the access token, and a browser's call relayed
# by the gateway would come from that proxy.
OAUTH2_BROWSER_PATHS="/oauth2/start /oauth2/sign_in /oauth2/callback /oauth2/sign_out /oauth2/signed_out /oauth2/userinfo /oauth2/backchannel_logout /oauth2/jwks /oauth2/client_jwks"

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
# routes to tollgate) must say what deploy/kubernetes/forward-auth says. The
# routes to tollgate must be its browser paths, each Exact, and never reach
# its check endpoints: in ingress.yaml, and in the Ingress the Helm chart
# renders in forward-auth mode (whose notes must list the same paths).
step "docs/ingress.md agrees with deploy/kubernetes/forward-auth; the routes to tollgate there and in the chart"
if ! "$PY" - "$ROOT" "$OAUTH2_BROWSER_PATHS" "${renders[@]}" <<'PY'
import os, re, sys
import yaml

root, browser, specs = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
doc = open(os.path.join(root, "docs", "ingress.md")).read()
section = doc.split("## ingress-nginx", 1)[1]
block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
documented = [d for d in yaml.safe_load_all(block) if d]
shipped = [d for d in yaml.safe_load_all(open(os.path.join(
    root, "deploy", "kubernetes", "forward-auth", "ingress.yaml"))) if d]

def norm(v):
    return str(v).replace("<ns>", "NAMESPACE")

def segments(p):
    return [s for s in p.split("/") if s]

def may_match(kind, value, path, below=False):
    """Whether an Ingress path (Exact or Prefix) matches path, or, with
    below, path or a path under it. None: cannot tell (ImplementationSpecific)."""
    v, p = segments(value), segments(path)
    if kind == "Exact":
        return v[:len(p)] == p if below else value == path
    if kind == "Prefix":
        n = min(len(v), len(p)) if below else len(v)
        return v[:n] == p[:n]
    return None

# tollgate's check endpoints: (path, everything under it too)
CHECKS = [("/oauth2/auth", False), ("/oauth2/ext_authz", True)]

def auth(objs):
    """The auth annotations, the overwritten headers, the routes to tollgate."""
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
                    out.setdefault("routes to tollgate", []).append(
                        (p["path"], p["pathType"], b["port"]["number"]))
    if "routes to tollgate" in out:
        out["routes to tollgate"].sort()
    return out

d, s = auth(documented), auth(shipped)
bad = [f"{k}: docs/ingress.md has {d.get(k)!r}, ingress.yaml has {s.get(k)!r}"
       for k in sorted(set(d) | set(s)) if d.get(k) != s.get(k)]
# What ingress.yaml routes to tollgate: its browser paths, nothing else.
def check_routes(where, routes):
    """routes: (path, pathType) of every Ingress path to tollgate's Service.
    Exactly its browser paths, each Exact; never a check endpoint."""
    out = []
    for path, kind in routes:
        flagged = False
        for check, below in CHECKS:
            hit = may_match(kind, path, check, below)
            what = check + ("[/...]" if below else "")
            if hit is None:
                out.append(f"{where}: path {path} ({kind}) to tollgate: cannot tell whether it matches {what}; use Exact")
                flagged = True
            elif hit:
                out.append(f"{where} routes {what} to tollgate ({kind} {path}): its check endpoints must not be "
                           "reachable from outside (they answer the controller, a trusted proxy, with the access token)")
                flagged = True
        if not flagged and (kind != "Exact" or path not in browser):
            out.append(f"{where} routes {kind} {path} to tollgate: only its browser paths, each Exact ({' '.join(browser)})")
    missing = [b for b in browser if not any(may_match(k, p, b) for p, k in routes)]
    if missing:
        out.append(f"{where} does not route {' '.join(missing)} to tollgate (browsers or the provider must reach them)")
    return out

# What ingress.yaml routes to tollgate: its browser paths, nothing else.
bad += check_routes("ingress.yaml", [(p, k) for p, k, _ in s.get("routes to tollgate") or []])

# The chart in forward-auth mode (tollgate a regular container, not a
# sidecar): the Ingress it renders routes the same paths to tollgate's
# Service, and its notes list them.
chart_checked = []
for spec in specs:
    label, path = spec.split("|")[:2]
    if not label.startswith("helm "):
        continue
    objs = [o for o in yaml.safe_load_all(open(path)) if o]
    tpls = [o["spec"]["template"] for o in objs if o["kind"] == "Deployment"]
    fa = [t for t in tpls if any(c["name"] == "tollgate" for c in t["spec"].get("containers", []))]
    if not fa:
        continue
    tg_services = {o["metadata"]["name"] for o in objs if o["kind"] == "Service" and any(
        (o["spec"].get("selector") or {}).items() <= t["metadata"].get("labels", {}).items() for t in fa)
        and o["spec"].get("selector")}
    routes = [(p["path"], p["pathType"])
              for o in objs if o["kind"] == "Ingress"
              for rule in o["spec"].get("rules", [])
              for p in (rule.get("http") or {}).get("paths", [])
              if p["backend"].get("service", {}).get("name") in tg_services]
    notes_path = path[:-len(".yaml")] + ".NOTES.txt"
    notes = open(notes_path).read().split() if os.path.exists(notes_path) else []
    unlisted = [b for b in browser if b not in notes]
    if unlisted:
        bad.append(f"{label}: NOTES.txt does not list the browser paths {' '.join(unlisted)}")
    if not any(o["kind"] == "Ingress" for o in objs):
        continue  # forwardAuth.ingress.enabled=false: the notes say what to route
    bad += check_routes(f"{label}: the forward-auth Ingress", routes)
    chart_checked.append(label.removeprefix("helm "))
if not chart_checked:
    bad.append("no ci/*-values.yaml renders the chart's forward-auth Ingress: its routes are not checked")

for b in bad:
    print("FAIL: " + b)
if not bad:
    print(f"ok   {len(s)} settings agree (auth annotations, overwritten headers, routes to tollgate); "
          f"tollgate gets its {len(browser)} browser paths (Exact), not /oauth2/auth or /oauth2/ext_authz, "
          f"from ingress.yaml and from the chart's forward-auth Ingress ({', '.join(chart_checked)})")
sys.exit(1 if bad else 0)
PY
then failed=1; fi

# ------------------------------------------------- Gateway API manifests
# deploy/kubernetes/gateways/*.yaml: Gateway API, Envoy Gateway, Istio and
# Traefik objects. Their CRDs come from the pinned Go modules through the Go
# module proxy, once (only the CRD files are kept, under $CACHE).
step "deploy/kubernetes/gateways: CRD schemas (strict), Istio mesh config, references"
CRD_MODULES=("$GATEWAY_API_MODULE" "$ENVOY_GATEWAY_MODULE" "$ISTIO_API_MODULE" "$TRAEFIK_MODULE")
crds_key=$(printf '%s\n' "${CRD_MODULES[@]}" | sha256sum | cut -c1-12)
CRDS=$CACHE/crds-$crds_key
crd_problem=
if [ ! -f "$CRDS/.complete" ]; then
  if ! command -v go >/dev/null 2>&1; then
    crd_problem="no go command to fetch the CRDs from the Go module proxy"
  else
    rm -rf "$CRDS"
    mkdir -p "$CRDS"
    zips=()
    for m in "${CRD_MODULES[@]}"; do
      # A temporary module cache: only the extracted CRD files are kept.
      if GOMODCACHE=$WORK/gomod GOFLAGS=-modcacherw GOTOOLCHAIN=local \
          go mod download -json "$m" >"$WORK/mod.json" 2>"$WORK/err" ||
         "$PY" -c 'import json,os,sys; z=json.load(open(sys.argv[1])).get("Zip",""); sys.exit(not os.path.isfile(z))' "$WORK/mod.json"; then
        zips+=("$m|$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["Zip"])' "$WORK/mod.json")")
      else
        crd_problem="go mod download $m failed: $("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("Error",""))' "$WORK/mod.json" 2>/dev/null || true) $(head -c 300 "$WORK/err")"
        break
      fi
    done
    if [ -z "$crd_problem" ]; then
      echo "fetched ${CRD_MODULES[*]} (Go module proxy)"
      if "$PY" - "$CRDS" "${zips[@]}" <<'PY'
# Keeps each CRD version's openAPIV3Schema as schemas/<source>/<group>/<version>/<Kind>.json,
# and Istio's mesh config protobuf definition.
import fnmatch, json, os, sys, zipfile
import yaml

out, specs = sys.argv[1], sys.argv[2:]
wanted = {  # module path -> [(pattern in the module, source name)]
    "sigs.k8s.io/gateway-api": [("config/crd/standard/*.yaml", "gateway-api-standard"),
                                ("config/crd/experimental/*.yaml", "gateway-api-experimental")],
    "github.com/envoyproxy/gateway": [("charts/gateway-helm/charts/crds/crds/generated/*.yaml", "envoy-gateway")],
    "istio.io/api": [("kubernetes/customresourcedefinitions.gen.yaml", "istio"),
                     ("mesh/v1alpha1/config.proto", "istio-mesh")],
    "github.com/traefik/traefik/v3": [("docs/content/reference/dynamic-configuration/traefik.io_*.yaml", "traefik")],
}
loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
count = 0
for spec in specs:
    mod, zpath = spec.split("|")
    path, version = mod.rsplit("@", 1)
    with zipfile.ZipFile(zpath) as z:
        for name in z.namelist():
            prefix = f"{path}@{version}/"
            rel = name[len(prefix):] if name.startswith(prefix) else None
            for pattern, source in wanted[path]:
                if rel is None or not fnmatch.fnmatch(rel, pattern):
                    continue
                text = z.read(name).decode()
                if rel.endswith(".proto"):
                    os.makedirs(os.path.join(out, source), exist_ok=True)
                    open(os.path.join(out, source, os.path.basename(rel)), "w").write(text)
                    count += 1
                    continue
                for doc in yaml.load_all(text, Loader=loader):
                    if not doc or doc.get("kind") != "CustomResourceDefinition":
                        continue
                    group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
                    for v in doc["spec"]["versions"]:
                        d = os.path.join(out, "schemas", source, group, v["name"])
                        os.makedirs(d, exist_ok=True)
                        json.dump({"module": mod, "served": v.get("served", True),
                                   "schema": v["schema"]["openAPIV3Schema"]},
                                  open(os.path.join(d, kind + ".json"), "w"))
                        count += 1
print(f"kept {count} CRD versions and protobuf files in {out}")
sys.exit(0 if count else 1)
PY
      then touch "$CRDS/.complete"
      else crd_problem="could not extract the CRDs"
      fi
    fi
  fi
fi
if [ -n "$crd_problem" ]; then
  rm -rf "$CRDS"
  if [ -n "${CI:-}" ]; then
    fail "$crd_problem"
  else
    echo "SKIPPED (not in CI): CRD schema validation of deploy/kubernetes/gateways: $crd_problem"
  fi
  CRDS=
fi
if ! "$PY" - "$ROOT" "$WORK/kustomize-forward-auth.yaml" "${CRDS:-}" "$KUBE_VERSIONS" "$OAUTH2_BROWSER_PATHS" <<'PY'
import copy, glob, json, os, re, sys, tomllib
import yaml

root, fa_path, crds, kube_versions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
BROWSER = sys.argv[5].split()
gw_dir = os.path.join(root, "deploy", "kubernetes", "gateways")
rel = lambda p: os.path.relpath(p, root)
errors = []
def err(where, msg):
    errors.append(f"{where}: {msg}")

files = sorted(glob.glob(os.path.join(gw_dir, "*.yaml")))
if not files:
    print("FAIL: no deploy/kubernetes/gateways/*.yaml")
    sys.exit(1)
# Gateway API objects validate against the standard channel, except in these
# files, which show experimental-channel features.
EXPERIMENTAL = {"httproute-externalauth.yaml"}
CORE_GROUPS = {"", "networking.k8s.io", "apps", "policy"}
SOURCES = {"gateway.networking.k8s.io": "gateway-api", "gateway.envoyproxy.io": "envoy-gateway",
           "security.istio.io": "istio", "networking.istio.io": "istio", "traefik.io": "traefik"}

# ---- tollgate's side: deploy/kubernetes/forward-auth as rendered above.
if not os.path.exists(fa_path):
    print("FAIL: no render of deploy/kubernetes/forward-auth to check against")
    sys.exit(1)
fa = [o for o in yaml.safe_load_all(open(fa_path)) if o]
fa_services = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in fa if o["kind"] == "Service"}
fa_pods = [o["spec"]["template"] for o in fa if o["kind"] == "Deployment"]
tg = [s for (ns, n), s in fa_services.items() if n == "tollgate"]
if not tg:
    print("FAIL: deploy/kubernetes/forward-auth has no Service tollgate")
    sys.exit(1)
TG_NS, TG_NAME = tg[0]["metadata"]["namespace"], "tollgate"
TG_PORTS = {p["port"] for p in tg[0]["spec"]["ports"]}
cfg_text = next(o["data"]["tollgate.toml"] for o in fa if o["kind"] == "ConfigMap" and "tollgate.toml" in (o.get("data") or {}))
HOST = re.sub(r"^https?://", "", tomllib.loads(cfg_text)["server"]["public_url"]).split("/")[0].split(":")[0]
# The identity headers tollgate answers with, from its source.
src = open(os.path.join(root, "src", "gateway", "forward_auth.rs")).read()
IDENTITY = set(re.findall(r'set\(\s*"(x-auth-request-[a-z-]+)"', src)) | {"x-tollgate-assertion"}
CORE_IDENTITY = {"x-auth-request-user", "x-auth-request-email",
                 "x-auth-request-preferred-username", "x-auth-request-groups"}
if not CORE_IDENTITY <= IDENTITY:
    err("src/gateway/forward_auth.rs", f"does not set {sorted(CORE_IDENTITY - IDENTITY)} any more")
EXT_AUTHZ = re.search(r'pub const EXT_AUTHZ: &str = "([^"]+)"', src).group(1)
DENY_HEADERS = {"set-cookie", "location", "content-type", "www-authenticate"}
# tollgate's check endpoints, never routed to it from outside: (path, and
# every path under it too).
CHECKS = [("/oauth2/auth", False), (EXT_AUTHZ, True)]
# The /oauth2/ paths tollgate's router serves (its match arms): the browser
# paths and /oauth2/auth (and /oauth2/ext_authz/<path>, matched by prefix).
router = open(os.path.join(root, "src", "gateway", "router.rs")).read()
served = set(re.findall(r'"(/oauth2/[a-z_]+)"(?=\s*(?:\||if\b|=>))', router)) - {"/oauth2/auth"}
if served != set(BROWSER):
    err("src/gateway/router.rs", f"serves the browser paths {sorted(served)}, deploy/validate.sh's "
        f"OAUTH2_BROWSER_PATHS (and the routes) have {sorted(BROWSER)}")

def segments(p):
    return [s for s in p.split("/") if s]

def may_match(kind, value, path, below=False):
    """Whether a Gateway API path match (Exact or PathPrefix, which matches
    whole segments) matches path, or, with below, path or a path under it.
    None: cannot tell (RegularExpression)."""
    v, p = segments(value), segments(path)
    if kind == "Exact":
        return v[:len(p)] == p if below else value == path
    if kind == "PathPrefix":
        n = min(len(v), len(p)) if below else len(v)
        return v[:n] == p[:n]
    return None

def istio_may_match(pattern, path, below=False):
    """The same for an AuthorizationPolicy path: exact, prefix ("/x/*"),
    suffix ("*/x") or presence ("*")."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return True if below else path.endswith(pattern[1:])
    if pattern.endswith("*"):
        pre = pattern[:-1]
        return path.startswith(pre) or (below and pre.startswith(path + "/"))
    return pattern == path or (below and pattern.startswith(path + "/"))
CHECK_HEADERS = {"cookie", "accept"}  # besides Authorization, which Envoy always sends

def check_identity_headers(where, names):
    got = [n.lower() for n in names or []]
    if len(got) != len(set(got)):
        err(where, "lists a header twice")
    if not set(got) <= IDENTITY:
        err(where, f"{sorted(set(got) - IDENTITY)} are not headers tollgate answers with ({sorted(IDENTITY)})")
    if not CORE_IDENTITY <= set(got):
        err(where, f"misses {sorted(CORE_IDENTITY - set(got))}")
    return set(got)

def tollgate_ref(where, name, ns, port):
    if (name, ns) != (TG_NAME, TG_NS) or port not in TG_PORTS:
        err(where, f"{ns}/{name}:{port} is not tollgate's Service {TG_NS}/{TG_NAME}:{sorted(TG_PORTS)} "
            "of deploy/kubernetes/forward-auth")

# ---- strict CRD schemas
def strict(node):
    """Unknown fields become errors: additionalProperties: false wherever an
    object lists its properties and does not allow more."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for k, v in node.items():
            if k != "enum":
                strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)
    return node

schema_cache, modules = {}, set()
def crd_schema(source, group, version, kind):
    key = (source, group, version, kind)
    if key not in schema_cache:
        p = os.path.join(crds, "schemas", source, group, version, kind + ".json")
        if os.path.exists(p):
            d = json.load(open(p))
            modules.add(d["module"])
            s = strict(copy.deepcopy(d["schema"]))
            # metadata is "type: object" in every CRD: only the ObjectMeta
            # fields a manifest sets are allowed here.
            s.setdefault("properties", {}).update(
                {"apiVersion": {"type": "string"}, "kind": {"type": "string"}})
            s["properties"]["metadata"] = {
                "type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                               "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                               "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}
            schema_cache[key] = s
        else:
            schema_cache[key] = None
    return schema_cache[key]

# ---- Istio's mesh config: field names and types from its protobuf definition
def proto_messages(text):
    text = re.sub(r"/\*.*?\*/", "", re.sub(r"//[^\n]*", "", text), flags=re.S)
    toks = re.findall(r'"[^"]*"|[A-Za-z_][\w.]*|\d+|[{}=;<>,\[\]()]', text)
    msgs, enums, stack, i = {}, set(), [], 0
    while i < len(toks):
        t = toks[i]
        if t in ("message", "enum", "oneof") and i + 2 < len(toks) and toks[i + 2] == "{":
            if t == "oneof":
                stack.append(None)
            else:
                full = ".".join([s for s in stack if s] + [toks[i + 1]])
                (msgs.setdefault(full, {}) if t == "message" else enums.add(full))
                stack.append(toks[i + 1] if t == "message" else "#enum")
            i += 3
        elif t == "}":
            stack.pop()
            i += 1
        elif "#enum" in stack or t in ("option", "reserved", "syntax", "package", "import", "extensions"):
            while toks[i] not in (";", "}"):
                i += 1
            i += toks[i] == ";"
        elif stack:
            j = toks.index(";", i)
            stmt = toks[i:j]
            if "=" in stmt:
                eq = stmt.index("=")
                name, typ = stmt[eq - 1], stmt[:eq - 1]
                repeated = typ[0] == "repeated"
                typ = [x for x in typ if x not in ("repeated", "optional")]
                scope = ".".join(s for s in stack if s and s != "#enum")
                camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)
                msgs[scope][camel] = ("map" if typ[0] == "map" else typ[0], repeated, scope)
            i = j + 1
        else:
            i += 1
    return msgs, enums

SCALARS = {"string": str, "bool": bool, "uint32": int, "int32": int, "uint64": int, "int64": int,
           "double": (int, float), "float": (int, float), "google.protobuf.Duration": str,
           "google.protobuf.UInt32Value": int, "google.protobuf.BoolValue": bool}
def check_proto(where, value, msg, msgs, enums):
    if not isinstance(value, dict):
        err(where, f"is not a mapping ({msg})")
        return
    for k, v in value.items():
        f = msgs[msg].get(k)
        if not f:
            err(where, f"unknown field {k} (not in {msg.split('.')[-1]})")
            continue
        typ, repeated, scope = f
        items = v if repeated else [v]
        if repeated and not isinstance(v, list):
            err(f"{where}.{k}", "is not a list")
            continue
        parts = scope.split(".")
        resolved = next((c for c in [".".join(parts[:n] + [typ]) for n in range(len(parts), -1, -1)]
                         if c in msgs or c in enums), None)
        for n, item in enumerate(items):
            w = f"{where}.{k}" + (f"[{n}]" if repeated else "")
            if typ == "map":
                if not isinstance(item, dict):
                    err(w, "is not a mapping")
            elif resolved in msgs:
                check_proto(w, item, resolved, msgs, enums)
            elif resolved in enums:
                if not isinstance(item, str):
                    err(w, "is not an enum name")
            elif typ in SCALARS:
                if not isinstance(item, SCALARS[typ]) or (SCALARS[typ] is int and isinstance(item, bool)):
                    err(w, f"{item!r} is not a {typ}")
            # a message of another .proto file: not descended into

mesh_proto = None
if crds:
    p = os.path.join(crds, "istio-mesh", "config.proto")
    mesh_proto = proto_messages(open(p).read()) if os.path.exists(p) else None
    import jsonschema, kubernetes_validate
    from importlib.metadata import version as pkg_version

# ---- every file
validated = 0
summary = []
for path in files:
    name, where_file = os.path.basename(path), rel(path)
    try:
        objs = [o for o in yaml.safe_load_all(open(path)) if o]
    except yaml.YAMLError as e:
        err(where_file, f"not valid YAML: {e}")
        continue
    by = {}
    for o in objs:
        if not isinstance(o, dict) or not {"apiVersion", "kind", "metadata"} <= set(o):
            err(where_file, f"not a Kubernetes object: {str(o)[:80]}")
            continue
        by.setdefault(o["kind"], {})[(o["metadata"].get("namespace"), o["metadata"].get("name"))] = o
    objs = [o for k in by.values() for o in k.values()]
    def W(o):
        return f"{where_file}: {o['kind']}/{o['metadata'].get('name')}"

    # schemas
    for o in objs:
        group, _, version = o["apiVersion"].rpartition("/")
        if o["kind"] != "GatewayClass" and not o["metadata"].get("namespace"):
            err(W(o), "has no namespace (these files are applied with kubectl apply -f)")
        if not crds:
            continue
        if group in CORE_GROUPS:
            for kv in kube_versions:
                try:
                    kubernetes_validate.validate(o, kv, strict=True)
                except kubernetes_validate.ValidationError as e:
                    err(W(o), f"Kubernetes {kv}: {e.message} at {'.'.join(str(p) for p in e.path)}")
            validated += 1
            continue
        source = SOURCES.get(group)
        if source == "gateway-api":
            source += "-experimental" if name in EXPERIMENTAL else "-standard"
        schema = crd_schema(source, group, version, o["kind"]) if source else None
        if schema is None:
            err(W(o), f"no CRD schema for {o['apiVersion']} {o['kind']} in the pinned modules")
            continue
        for e in jsonschema.Draft4Validator(schema).iter_errors(o):
            err(W(o), f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:300]}")
        validated += 1

    # Gateway API references: parents, hostnames, backends
    gateways = by.get("Gateway", {})
    routes = by.get("HTTPRoute", {})
    if len(gateways) != 1:
        err(where_file, "expected one Gateway")
    for (ns, rn), r in routes.items():
        w = W(r)
        if HOST not in r["spec"].get("hostnames", []):
            err(w, f"hostnames do not include {HOST} (server.public_url)")
        for pr in r["spec"].get("parentRefs", []):
            gw = gateways.get((pr.get("namespace", ns), pr["name"]))
            if not gw:
                err(w, f"parentRef {pr['name']} is not a Gateway of this file")
                continue
            listeners = {l["name"]: l for l in gw["spec"]["listeners"]}
            if pr.get("sectionName") and pr["sectionName"] not in listeners:
                err(w, f"parentRef sectionName {pr['sectionName']} is no listener of Gateway/{pr['name']}")
            for l in listeners.values():
                frm = ((l.get("allowedRoutes") or {}).get("namespaces") or {}).get("from", "Same")
                if frm == "Same" and gw["metadata"]["namespace"] != ns:
                    err(w, f"Gateway/{pr['name']} listener {l['name']} admits routes of its own namespace only")
        for rule in r["spec"].get("rules", []):
            for b in rule.get("backendRefs", []):
                bns = b.get("namespace", ns)
                svc = fa_services.get((bns, b["name"]))
                if b.get("kind", "Service") != "Service" or not svc:
                    err(w, f"backendRef {bns}/{b['name']} is not a Service of deploy/kubernetes/forward-auth")
                elif b.get("port") not in {p["port"] for p in svc["spec"]["ports"]}:
                    err(w, f"backendRef {b['name']}: Service has no port {b.get('port')}")
                if bns != ns and not any(
                        any(f.get("kind") == "HTTPRoute" and f.get("namespace") == ns for f in g["spec"]["from"])
                        for (gns, _), g in by.get("ReferenceGrant", {}).items() if gns == bns):
                    err(w, f"backendRef to namespace {bns} without a ReferenceGrant there")

    # Which routes carry the check, and how.
    def to_tollgate(r):
        return any(b["name"] == TG_NAME for rule in r["spec"].get("rules", []) for b in rule.get("backendRefs", []))
    protected, how = set(), None
    for key, p in by.get("SecurityPolicy", {}).items():
        how = "Envoy Gateway SecurityPolicy extAuth"
        w = W(p)
        ea = p["spec"].get("extAuth") or {}
        http = ea.get("http") or {}
        if not http:
            err(w, "no extAuth.http")
        for b in http.get("backendRefs", []) + ([http["backendRef"]] if http.get("backendRef") else []):
            tollgate_ref(f"{w}: extAuth.http.backendRefs", b["name"], b.get("namespace", key[0]), b.get("port"))
            if b.get("namespace", key[0]) != key[0] and not by.get("ReferenceGrant"):
                err(w, "cross-namespace extAuth backend without a ReferenceGrant")
        if http.get("path") != EXT_AUTHZ:
            err(w, f"extAuth.http.path is {http.get('path')!r}, not {EXT_AUTHZ}")
        copied = check_identity_headers(f"{w}: extAuth.http.headersToBackend", http.get("headersToBackend"))
        if not CHECK_HEADERS <= {h.lower() for h in ea.get("headersToExtAuth", [])}:
            err(w, f"extAuth.headersToExtAuth must include {sorted(CHECK_HEADERS)}")
        for t in p["spec"].get("targetRefs", []):
            if t.get("kind") == "HTTPRoute" and (key[0], t["name"]) in routes:
                protected.add((key[0], t["name"]))
            else:
                err(w, f"targetRef {t.get('kind')}/{t.get('name')} is not an HTTPRoute of this file")
        # Client-sent copies of the copied headers must go before ext_authz.
        early = set()
        for (cns, _), c in by.get("ClientTrafficPolicy", {}).items():
            if any(t.get("kind") == "Gateway" and (cns, t["name"]) in gateways for t in c["spec"].get("targetRefs", [])):
                early |= {h.lower() for h in ((c["spec"].get("headers") or {}).get("earlyRequestHeaders") or {}).get("remove", [])}
        if not copied <= early:
            err(w, f"no ClientTrafficPolicy on the Gateway removes client-sent {sorted(copied - early)} early")
    for (ns, rn), r in routes.items():
        for rule in r["spec"].get("rules", []):
            for f in rule.get("filters", []):
                w = W(r)
                if f["type"] == "ExtensionRef":
                    x = f["extensionRef"]
                    mw = by.get("Middleware", {}).get((ns, x["name"]))
                    if (x.get("group"), x.get("kind")) != ("traefik.io", "Middleware") or not mw:
                        err(w, f"ExtensionRef {x.get('group')}/{x.get('kind')}/{x['name']} is not a Middleware of this file")
                        continue
                    how = "Traefik forwardAuth Middleware (HTTPRoute ExtensionRef)"
                    fwd = mw["spec"].get("forwardAuth") or {}
                    wm = W(mw)
                    m = re.match(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)(/[^?]*)(\?.*)?$", fwd.get("address", ""))
                    if not m:
                        err(wm, f"forwardAuth.address {fwd.get('address')!r} is not http://<svc>.<ns>.svc.cluster.local:<port>/...")
                    else:
                        tollgate_ref(f"{wm}: forwardAuth.address", m.group(1), m.group(2), int(m.group(3)))
                        if m.group(4) != "/oauth2/auth" or m.group(5) not in (None, "?mode=redirect"):
                            err(wm, f"forwardAuth.address path is {m.group(4)}{m.group(5) or ''}, not /oauth2/auth[?mode=redirect]")
                    if fwd.get("trustForwardHeader") is not True:
                        err(wm, "forwardAuth.trustForwardHeader must be true (the X-Forwarded-* headers the entry point set)")
                    req = {h.lower() for h in fwd.get("authRequestHeaders", [])}
                    if req and not (CHECK_HEADERS | {"authorization"}) <= req:
                        err(wm, f"forwardAuth.authRequestHeaders must include {sorted(CHECK_HEADERS | {'authorization'})}")
                    check_identity_headers(f"{wm}: forwardAuth.authResponseHeaders", fwd.get("authResponseHeaders"))
                    protected.add((ns, rn))
                elif f["type"] == "ExternalAuth":
                    how = "Gateway API HTTPRoute ExternalAuth filter"
                    x = f["externalAuth"]
                    b = x["backendRef"]
                    tollgate_ref(f"{w}: externalAuth.backendRef", b["name"], b.get("namespace", ns), b.get("port"))
                    if x.get("protocol") != "HTTP":
                        err(w, "externalAuth.protocol must be HTTP (tollgate is not a gRPC ext_authz service)")
                    http = x.get("http") or {}
                    if http.get("path") != EXT_AUTHZ:
                        err(w, f"externalAuth.http.path is {http.get('path')!r}, not {EXT_AUTHZ}")
                    if not CHECK_HEADERS <= {h.lower() for h in http.get("allowedHeaders", [])}:
                        err(w, f"externalAuth.http.allowedHeaders must include {sorted(CHECK_HEADERS)}")
                    check_identity_headers(f"{w}: externalAuth.http.allowedResponseHeaders", http.get("allowedResponseHeaders"))
                    protected.add((ns, rn))
    # Istio: the mesh config's provider, and a CUSTOM AuthorizationPolicy on the Gateway.
    providers = {}
    for (_, cn), cm in by.get("ConfigMap", {}).items():
        if cn == "istio" and "mesh" in (cm.get("data") or {}):
            w = W(cm)
            mesh = yaml.safe_load(cm["data"]["mesh"])
            if mesh_proto:
                check_proto(f"{w}: mesh", mesh, "MeshConfig", *mesh_proto)
            for prov in mesh.get("extensionProviders", []):
                h = prov.get("envoyExtAuthzHttp")
                if not h:
                    continue
                providers[prov["name"]] = h
                wp = f"{w}: extensionProviders[{prov['name']}].envoyExtAuthzHttp"
                svc = re.match(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local$", h.get("service", ""))
                if not svc:
                    err(wp, f"service {h.get('service')!r} is not <svc>.<ns>.svc.cluster.local")
                else:
                    tollgate_ref(f"{wp}: service", svc.group(1), svc.group(2), h.get("port"))
                if h.get("pathPrefix") != EXT_AUTHZ:
                    err(wp, f"pathPrefix is {h.get('pathPrefix')!r}, not {EXT_AUTHZ}")
                if not (CHECK_HEADERS | {"authorization"}) <= {x.lower() for x in h.get("includeRequestHeadersInCheck", [])}:
                    err(wp, f"includeRequestHeadersInCheck must include {sorted(CHECK_HEADERS | {'authorization'})}")
                check_identity_headers(f"{wp}: headersToUpstreamOnAllow", h.get("headersToUpstreamOnAllow"))
                if not DENY_HEADERS <= {x.lower() for x in h.get("headersToDownstreamOnDeny", [])}:
                    err(wp, f"headersToDownstreamOnDeny must include {sorted(DENY_HEADERS)}")
    for (ans, an), ap in by.get("AuthorizationPolicy", {}).items():
        how = "Istio AuthorizationPolicy CUSTOM (envoyExtAuthzHttp provider)"
        w = W(ap)
        spec = ap["spec"]
        if spec.get("action") != "CUSTOM" or (spec.get("provider") or {}).get("name") not in providers:
            err(w, f"must be action CUSTOM with a provider of the mesh config ({sorted(providers)})")
        # Every request is checked except tollgate's browser paths, exactly:
        # its check endpoints are checked (and routed to the app) like any path.
        rules = spec.get("rules") or []
        ops = [op.get("operation", {}) for r_ in rules for op in r_.get("to", [])]
        if not rules or any(set(r_) != {"to"} for r_ in rules) or len(ops) != sum(len(r_["to"]) for r_ in rules):
            err(w, "every rule must be a `to` operation only (a `from`, `when` or empty rule changes what is checked)")
        for op in ops:
            if set(op) != {"notPaths"}:
                err(w, f"an operation sets {sorted(op)}: only notPaths (tollgate's browser paths), so that every other request is checked")
            nots = op.get("notPaths") or []
            flagged = False
            for check, below in CHECKS:
                hit = [p for p in nots if istio_may_match(p, check, below)]
                if hit:
                    flagged = True
                    err(w, f"notPaths {hit} leave {check}{'[/...]' if below else ''} unchecked: tollgate's check "
                        "endpoints must be checked like any path (and not routed to tollgate)")
            if not flagged and (len(nots) != len(set(nots)) or set(nots) != set(BROWSER)):
                err(w, f"notPaths must be exactly tollgate's browser paths {BROWSER}, not {nots}")
        for t in spec.get("targetRefs", []):
            if t.get("kind") == "Gateway" and (ans, t["name"]) in gateways:
                protected |= {k for k, r in routes.items() if any(pr["name"] == t["name"] for pr in r["spec"]["parentRefs"])
                              and not to_tollgate(r)}
            else:
                err(w, f"targetRef {t.get('kind')}/{t.get('name')} is not a Gateway of this file")
    # The app's route is checked; the route to tollgate exists, is not, and
    # matches exactly tollgate's browser paths: its check endpoints
    # (/oauth2/auth, /oauth2/ext_authz/...) answer a trusted proxy with the
    # access token, and must fall to the app's checked route instead.
    oauth2 = [k for k, r in routes.items() if to_tollgate(r)]
    app = [k for k, r in routes.items() if not to_tollgate(r)]
    if not how:
        err(where_file, "no SecurityPolicy, ExtensionRef Middleware, ExternalAuth filter or AuthorizationPolicy protects the app")
    if not oauth2:
        err(where_file, "needs an HTTPRoute sending tollgate's browser paths to it")
    tg_matches = []
    for k in oauth2:
        for rule in routes[k]["spec"].get("rules", []):
            for m in rule.get("matches") or [{}]:
                pm = m.get("path") or {}
                tg_matches.append((k, pm.get("type", "PathPrefix"), pm.get("value", "/")))
    for k, kind, value in tg_matches:
        w, flagged = W(routes[k]), False
        for check, below in CHECKS:
            hit = may_match(kind, value, check, below)
            what = check + ("[/...]" if below else "")
            if hit is None:
                err(w, f"path match {kind} {value}: cannot tell whether it matches {what}; use Exact")
                flagged = True
            elif hit:
                err(w, f"matches {what} ({kind} {value}): tollgate's check endpoints must not be routable from "
                    "outside (relayed by the gateway, a browser's call comes from a trusted proxy)")
                flagged = True
        if not flagged and (kind != "Exact" or value not in BROWSER):
            err(w, f"matches {kind} {value}: only tollgate's browser paths, each Exact ({' '.join(BROWSER)})")
    missing = [b for b in BROWSER if not any(may_match(kind, value, b) for _, kind, value in tg_matches)]
    if oauth2 and missing:
        err(where_file, f"no route sends {' '.join(missing)} to tollgate (browsers or the provider must reach them)")
    for k in oauth2:
        if k in protected:
            err(W(routes[k]), "tollgate's route must not carry the check (login, callback, sign-out live there)")
    for k in app:
        if k not in protected:
            err(W(routes[k]), "the app's route does not carry the check")
    # NetworkPolicies admit the gateway to tollgate's and the app's pods.
    for (_, nn), np_ in by.get("NetworkPolicy", {}).items():
        sel = np_["spec"]["podSelector"]
        def selects(labels):
            ok = all(labels.get(k) == v for k, v in (sel.get("matchLabels") or {}).items())
            for e in sel.get("matchExpressions", []):
                ok &= (labels.get(e["key"]) in e.get("values", [])) == (e["operator"] == "In")
            return ok
        hit = [t for t in fa_pods if selects(t["metadata"].get("labels", {}))]
        names = {t["metadata"]["labels"].get("app.kubernetes.io/name") for t in hit}
        if not {"tollgate", "app"} <= names:
            err(W(np_), "must select the tollgate and app pods of deploy/kubernetes/forward-auth")
        cports = {p["containerPort"] for t in hit for c in t["spec"]["containers"] for p in c.get("ports", [])}
        for rule in np_["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                if p["port"] not in cports:
                    err(W(np_), f"port {p['port']} is no container port of the selected pods")
    summary.append(f"{name}: {how}")

for e in errors:
    print("FAIL: " + e)
for s in summary:
    print(("ok   " if not any(e.startswith(rel(os.path.join(gw_dir, s.split(':')[0]))) for e in errors) else "FAIL ") + s)
if crds:
    print(f"ok   {validated} objects checked against their schemas (strict): " + ", ".join(sorted(modules)) +
          f", Kubernetes {' and '.join(kube_versions)} (jsonschema {pkg_version('jsonschema')})" if not errors else
          f"     {validated} objects checked against their schemas")
sys.exit(1 if errors else 0)
PY
then failed=1; fi

# docs/ingress.md quotes deploy/kubernetes/gateways: every ```yaml block that
# starts with "# deploy/kubernetes/gateways/<file>" must consist of objects of
# that file, as they are there; the objects that carry the check must be
# quoted.
step "docs/ingress.md agrees with deploy/kubernetes/gateways"
if ! "$PY" - "$ROOT" <<'PY'
import glob, os, re, sys
import yaml

root = sys.argv[1]
doc = open(os.path.join(root, "docs", "ingress.md")).read()
gw = os.path.join(root, "deploy", "kubernetes", "gateways")
files = {os.path.basename(f): [o for o in yaml.safe_load_all(open(f)) if o]
         for f in sorted(glob.glob(os.path.join(gw, "*.yaml")))}
key = lambda o: (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
quoted, bad, blocks = set(), [], 0
for m in re.finditer(r"```yaml\n# deploy/kubernetes/gateways/([\w.-]+)[^\n]*\n(.*?)```", doc, re.S):
    name, body = m.group(1), m.group(2)
    blocks += 1
    if name not in files:
        bad.append(f"docs/ingress.md quotes {name}, which is not in deploy/kubernetes/gateways")
        continue
    shipped = {key(o): o for o in files[name]}
    for d in yaml.safe_load_all(body):
        if not d:
            continue
        k = key(d)
        if k not in shipped:
            bad.append(f"docs/ingress.md: {k[0]}/{k[2]} is not in {name}")
        elif d != shipped[k]:
            bad.append(f"docs/ingress.md: {k[0]}/{k[2]} differs from {name}")
        else:
            quoted.add((name,) + k)
# What must be quoted: the objects that carry the check.
MUST = {"SecurityPolicy", "ClientTrafficPolicy", "AuthorizationPolicy", "Middleware"}
for name, objs in files.items():
    for o in objs:
        carries = o["kind"] in MUST or (o["kind"] == "ConfigMap" and "mesh" in (o.get("data") or {})) or (
            o["kind"] == "HTTPRoute" and any(r.get("filters") for r in o["spec"].get("rules", [])))
        if carries and (name,) + key(o) not in quoted:
            bad.append(f"docs/ingress.md does not quote {o['kind']}/{o['metadata']['name']} of {name}")
for b in bad:
    print("FAIL: " + b)
if not bad:
    print(f"ok   {blocks} snippets, {len(quoted)} objects as in deploy/kubernetes/gateways/ "
          f"({', '.join(files)})")
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
- deploy/kubernetes/gateways is checked against the CRD schemas and for its
  references only: no Envoy Gateway, Istio, Traefik or Cilium runs it, and
  the CRDs' CEL rules (x-kubernetes-validations) and defaults are not
  applied. tollgate's /oauth2/ext_authz is tested against Envoy's documented
  contract by the Rust tests, not against Envoy.
- ServiceMonitor and PodMonitor are checked for their references only: there
  is no schema of the Prometheus Operator's CRDs here, and no Prometheus.
- The Grafana dashboard is checked as JSON, for its data source input and its
  metric names; no Grafana loads it and its PromQL is not evaluated.
- Provider reachability, real secrets and TLS are not exercised:
  check-config validates the configuration without contacting the provider.
EOF
[ -n "$tollgate" ] || echo "- tollgate check-config was SKIPPED: no tollgate binary."
[ -n "$sd_checked" ] || echo "- the systemd unit was not checked: no systemd-analyze."
[ -z "$crd_problem" ] || echo "- deploy/kubernetes/gateways was NOT checked against the CRD schemas: $crd_problem"
echo "- The systemd unit is checked offline (verify, security score), not run."

elapsed=$((SECONDS - started))
if [ "$failed" -ne 0 ]; then
  printf '\ndeploy/validate.sh: FAILED (%ss)\n' "$elapsed"
  exit 1
fi
printf '\ndeploy/validate.sh: all checks passed (%ss)\n' "$elapsed"
