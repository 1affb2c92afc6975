{{/* The release's resource name: <release>-<chart>, or the release name when it already holds the chart's. */}}
{{- define "factory.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "factory.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "factory.labels" -}}
{{ include "factory.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "factory.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "factory.cacheKeySecret" -}}
{{- .Values.cacheSigningKey.existingSecret | default (printf "%s-cache-key" (include "factory.fullname" .)) -}}
{{- end -}}

{{- define "factory.secureBootSecret" -}}
{{- .Values.secureBoot.existingSecret | default (printf "%s-secureboot" (include "factory.fullname" .)) -}}
{{- end -}}

{{/* Refuses combinations that cannot work, before anything is applied. */}}
{{- define "factory.validate" -}}
{{- if not (has .Values.storage.mode (list "embedded" "external")) -}}
{{- fail (printf "storage.mode must be embedded or external, not %q" .Values.storage.mode) -}}
{{- end -}}
{{- if and (eq .Values.storage.mode "external") (not .Values.storage.external.registry) -}}
{{- fail "storage.mode external needs storage.external.registry" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (eq .Values.storage.mode "embedded") -}}
{{- fail "replicaCount > 1 needs storage.mode external: each replica's embedded store would be its own" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (or .Values.cacheSigningKey.existingSecret .Values.cacheSigningKey.pem)) -}}
{{- fail "replicaCount > 1 needs cacheSigningKey: replicas sharing a cache must sign it with one key" -}}
{{- end -}}
{{- if and .Values.secureBoot.enabled (not .Values.secureBoot.existingSecret) (not (and .Values.secureBoot.signingKey .Values.secureBoot.signingCert .Values.secureBoot.pcrKey)) -}}
{{- fail "secureBoot.enabled needs secureBoot.existingSecret or all of signingKey, signingCert and pcrKey" -}}
{{- end -}}
{{- end -}}

{{/* The configuration file: the operator's config with the keys the chart owns laid over it. */}}
{{- define "factory.config" -}}
{{- $managed := dict "dataDir" "/var/lib/boot-assets" "http" (dict "httpListenAddr" ":8080") "metrics" (dict "addr" (ternary (printf ":%v" .Values.metrics.port) "" .Values.metrics.enabled)) -}}
{{- $cache := dict -}}
{{- if or .Values.cacheSigningKey.existingSecret .Values.cacheSigningKey.pem -}}
{{- $_ := set $cache "signingKeyPath" "/etc/boot-assets/cache-key/cache-signing-key.pem" -}}
{{- end -}}
{{- if eq .Values.storage.mode "external" -}}
{{- $ext := .Values.storage.external -}}
{{- $_ := set $cache "oci" (dict "registry" $ext.registry "namespace" $ext.namespace "repository" $ext.cacheRepository "insecure" $ext.insecure) -}}
{{- $installer := dict "internal" (dict "registry" $ext.registry "namespace" $ext.namespace "repository" $ext.installerRepository "insecure" $ext.insecure) -}}
{{- if $ext.installerExternal.registry -}}
{{- $_ := set $installer "external" (pick $ext.installerExternal "registry" "namespace" "repository") -}}
{{- end -}}
{{- $_ := set $managed "artifacts" (dict "schematic" (dict "registry" $ext.registry "namespace" $ext.namespace "repository" $ext.schematicRepository "insecure" $ext.insecure) "installer" $installer) -}}
{{- end -}}
{{- if $cache -}}
{{- $_ := set $managed "cache" $cache -}}
{{- end -}}
{{- if .Values.secureBoot.enabled -}}
{{- $_ := set $managed "secureBoot" (dict "enabled" true "file" (dict "signingKeyPath" "/etc/boot-assets/secureboot/uki-signing-key.pem" "signingCertPath" "/etc/boot-assets/secureboot/uki-signing-cert.pem" "pcrKeyPath" "/etc/boot-assets/secureboot/pcr-signing-key.pem")) -}}
{{- end -}}
{{- toYaml (mergeOverwrite (deepCopy .Values.config) $managed) -}}
{{- end -}}
