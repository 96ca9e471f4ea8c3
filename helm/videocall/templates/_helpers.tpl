{{/* Names and labels shared by every template. */}}
{{- define "videocall.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "videocall.fullname" -}}
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

{{- define "videocall.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "videocall.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "actix-api"). */}}
{{- define "videocall.selectorLabels" -}}
app.kubernetes.io/name: {{ include "videocall.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "videocall.image" -}}
{{- printf "%s/%s:%s" .ctx.Values.image.registry .name (default .ctx.Chart.AppVersion .ctx.Values.image.tag) }}
{{- end }}

{{- define "videocall.secretName" -}}
{{- default (printf "%s-secret" (include "videocall.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/* NATS_URL: the in-chart server or the external one. */}}
{{- define "videocall.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s-nats:4222" (include "videocall.fullname" .) }}
{{- else }}
{{- .Values.nats.url }}
{{- end }}
{{- end }}

{{/* A value generated once: the one in the Secret already installed, else `fallback`. */}}
{{- define "videocall.keep" -}}
{{- $secret := lookup "v1" "Secret" .ctx.Release.Namespace .secret }}
{{- if and $secret (hasKey $secret.data .key) }}
{{- index $secret.data .key | b64dec }}
{{- else }}
{{- .fallback }}
{{- end }}
{{- end }}

{{/* The PostgreSQL password: given, kept from the installed Secret, or drawn once per render
     (stored in .Values so that the database and the relays' DATABASE_URL get the same one). */}}
{{- define "videocall.postgresPassword" -}}
{{- if not .Values.postgresql.password }}
{{- $kept := include "videocall.keep" (dict "ctx" . "secret" (printf "%s-postgresql" (include "videocall.fullname" .)) "key" "POSTGRES_PASSWORD" "fallback" (randAlphaNum 32)) }}
{{- $_ := set .Values.postgresql "password" $kept }}
{{- end }}
{{- .Values.postgresql.password }}
{{- end }}

{{/* The environment both relays get: the ConfigMap and the Secret. */}}
{{- define "videocall.relayEnvFrom" -}}
- configMapRef:
    name: {{ include "videocall.fullname" . }}-config
- secretRef:
    name: {{ include "videocall.secretName" . }}
{{- end }}

{{/*
A relay pod's stop: the grace period, checked against the drain it must cover, and a preStop
pause so that the pod has left the Services before its clients are told to reconnect.
Call with (dict "ctx" $ "v" $v).
*/}}
{{- define "videocall.relayStop" -}}
{{- $d := .ctx.Values.config.drain }}
{{- $needed := add $d.preStopSeconds $d.seconds $d.timeoutSeconds 1 }}
{{- if le (int .v.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed config.drain's preStopSeconds + seconds + timeoutSeconds + 1 (%v)" .v.terminationGracePeriodSeconds $needed) }}
{{- end }}
terminationGracePeriodSeconds: {{ .v.terminationGracePeriodSeconds }}
{{- end }}

{{- define "videocall.relayPreStop" -}}
{{- if gt (int .Values.config.drain.preStopSeconds) 0 }}
lifecycle:
  preStop:
    exec:
      command: ["sleep", {{ .Values.config.drain.preStopSeconds | quote }}]
{{- end }}
{{- end }}
