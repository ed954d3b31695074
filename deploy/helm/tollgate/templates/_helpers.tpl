{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name: the release name, with the chart name unless it already holds it. */}}
{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The Secret holding the secret files: the user's, or the chart's. */}}
{{- define "tollgate.secretName" -}}
{{- default (include "tollgate.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/* The mode, checked (the schema checks it too, but not every renderer applies schemas). */}}
{{- define "tollgate.mode" -}}
{{- if not (has .Values.mode (list "sidecar" "forward-auth")) }}
{{- fail (printf "mode must be sidecar or forward-auth, not %q" .Values.mode) }}
{{- end }}
{{- .Values.mode }}
{{- end }}

{{/* Whether the metrics listener is on; a monitor without it is an error. */}}
{{- define "tollgate.metrics" -}}
{{- if and (not .Values.metrics.enabled) (or .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled) }}
{{- fail "metrics.serviceMonitor.enabled and metrics.podMonitor.enabled need metrics.enabled=true (tollgate's [metrics] listener)" }}
{{- end }}
{{- if .Values.metrics.enabled }}true{{ end }}
{{- end }}

{{/* The host of config.publicUrl, for the forward-auth Ingress. */}}
{{- define "tollgate.publicHost" -}}
{{- (urlParse (required "config.publicUrl is required (the origin browsers use, e.g. https://app.example.com)" .Values.config.publicUrl)).hostname }}
{{- end }}

{{- define "tollgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
tollgate.toml. Strings and lists go through toJson: a JSON string or array of
strings is also a valid TOML value, escapes included.
*/}}
{{- define "tollgate.toml" -}}
{{- $c := .Values.config -}}
[server]
listen = {{ printf "0.0.0.0:%v" .Values.tollgate.port | toJson }}
public_url = {{ required "config.publicUrl is required (the origin browsers use, e.g. https://app.example.com)" $c.publicUrl | toJson }}
shutdown_grace = {{ $c.shutdownGrace | toJson }}
{{- with $c.trustedProxies }}
trusted_proxies = {{ toJson . }}
{{- end }}

[upstream]
{{- if $c.upstreamUrl }}
url = {{ $c.upstreamUrl | toJson }}
{{- else }}
url = {{ printf "http://127.0.0.1:%v" $c.upstreamPort | toJson }}
{{- end }}

[provider]
issuer = {{ required "config.issuer is required (the provider's issuer URL)" $c.issuer | toJson }}
client_id = {{ required "config.clientId is required" $c.clientId | toJson }}
client_auth = {{ $c.clientAuth | toJson }}
{{- if ne $c.clientAuth "none" }}
client_secret_file = "/var/run/secrets/tollgate/client-secret"
{{- end }}
scopes = {{ toJson $c.scopes }}

[session]
secret_file = "/var/run/secrets/tollgate/session-secret"
lifetime = {{ $c.session.lifetime | toJson }}
store = {{ $c.session.store | toJson }}
{{- if eq $c.session.store "redis" }}

[session.redis]
url = {{ required "config.session.redis.url is required with config.session.store=redis" $c.session.redis.url | toJson }}
{{- if $c.session.redis.passwordFromSecret }}
password_file = "/var/run/secrets/tollgate/redis-password"
{{- end }}
{{- end }}

[log]
level = {{ $c.log.level | toJson }}
format = {{ $c.log.format | toJson }}
{{- if include "tollgate.metrics" . }}

[metrics]
listen = {{ printf "0.0.0.0:%v" .Values.metrics.port | toJson }}
{{- end }}
{{- with $c.extraToml }}

{{ . }}
{{- end }}
{{- end }}

{{/*
The tollgate container after its name, shared by both modes: the sidecar adds
restartPolicy Always, forward-auth a preStop sleep.
*/}}
{{- define "tollgate.container" -}}
image: {{ include "tollgate.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["--config", "/etc/tollgate/tollgate.toml"]
{{- with .Values.tollgate.env }}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
ports:
  - name: http
    containerPort: {{ .Values.tollgate.port }}
    protocol: TCP
  {{- if include "tollgate.metrics" . }}
  - name: metrics
    containerPort: {{ .Values.metrics.port }}
    protocol: TCP
  {{- end }}
startupProbe:
  httpGet:
    path: /healthz
    port: {{ .Values.tollgate.port }}
  periodSeconds: 1
  failureThreshold: 30
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .Values.tollgate.port }}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .Values.tollgate.port }}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- with .Values.tollgate.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tollgate.securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumeMounts:
  - name: tollgate-config
    mountPath: /etc/tollgate
    readOnly: true
  - name: tollgate-secrets
    mountPath: /var/run/secrets/tollgate
    readOnly: true
{{- end }}
