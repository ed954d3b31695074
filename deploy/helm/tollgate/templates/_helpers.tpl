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
url = {{ printf "http://127.0.0.1:%v" $c.upstreamPort | toJson }}

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
{{- if .Values.metrics.enabled }}

[metrics]
listen = {{ printf "0.0.0.0:%v" .Values.metrics.port | toJson }}
{{- end }}
{{- with $c.extraToml }}

{{ . }}
{{- end }}
{{- end }}
