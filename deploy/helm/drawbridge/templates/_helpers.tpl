{{/* Names and labels, as `helm create` writes them. */}}
{{- define "drawbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "drawbridge.fullname" -}}
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

{{- define "drawbridge.agentName" -}}
{{- printf "%s-agent" (include "drawbridge.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{/* Labels that are not selectors: pod templates add them to theirs. */}}
{{- define "drawbridge.metaLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "drawbridge.labels" -}}
{{ include "drawbridge.metaLabels" . }}
app.kubernetes.io/name: {{ include "drawbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels; component tells the gateway from the agent. */}}
{{- define "drawbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "drawbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "drawbridge.agentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "drawbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "drawbridge.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The state driver as drawbridge reads it: embedded when unset. */}}
{{- define "drawbridge.driver" -}}
{{- $state := index .Values.config "state" | default dict }}
{{- index $state "driver" | default "embedded" }}
{{- end }}

{{/* The port of a "host:port" listen address. */}}
{{- define "drawbridge.port" -}}
{{- $port := regexFind "[0-9]+$" (toString .) }}
{{- if not $port }}
{{- fail (printf "cannot find a port in listen address %q" (toString .)) }}
{{- end }}
{{- $port }}
{{- end }}

{{/*
Refusals: combinations that would deploy but not work. Included by every
gateway template, so `helm template` fails whichever file it reaches first.
*/}}
{{- define "drawbridge.validate" -}}
{{- $driver := include "drawbridge.driver" . }}
{{- if and (gt (int .Values.replicaCount) 1) (ne $driver "redis") }}
{{- fail (printf "replicaCount is %d but config.state.driver is %q: more than one replica needs the redis driver (each replica would keep its own quotas, throttles and delivery queue); set config.state.driver: redis or replicaCount: 1" (int .Values.replicaCount) $driver) }}
{{- end }}
{{- $admin := toString (index .Values.config "admin" | default "127.0.0.1:9090") }}
{{- if or (eq $admin "off") (hasPrefix "127." $admin) (hasPrefix "localhost:" $admin) (hasPrefix "[::1]:" $admin) }}
{{- fail (printf "config.admin is %q: the kubelet probes /healthz and /readyz on the admin listener, so it must listen on the pod's addresses (e.g. \":9090\")" $admin) }}
{{- end }}
{{- if and .Values.persistence.enabled (ne $driver "embedded") }}
{{- fail (printf "persistence.enabled keeps the embedded driver's state file, but config.state.driver is %q" $driver) }}
{{- end }}
{{- end }}
