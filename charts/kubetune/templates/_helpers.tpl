{{/* Names, labels and images shared by every template. */}}

{{- define "kubetune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name alone when it already holds the chart name. */}}
{{- define "kubetune.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubetune.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object; pass (dict "ctx" $ "component" "operator"). */}}
{{- define "kubetune.labels" -}}
helm.sh/chart: {{ include "kubetune.chart" .ctx }}
{{ include "kubetune.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: kubetune
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "kubetune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetune.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "kubetune.operatorServiceAccount" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-operator" (include "kubetune.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubetune.suggestionSecret" -}}
{{- default (printf "%s-suggestion-token" (include "kubetune.fullname" .)) .Values.suggestion.auth.existingSecret }}
{{- end }}

{{/* registry/repository:tag@digest; pass (dict "image" .Values.images.x "ctx" $). */}}
{{- define "kubetune.image" -}}
{{- $ref := .image.repository }}
{{- with .image.registry }}{{ $ref = printf "%s/%s" . $ref }}{{ end }}
{{- if .image.digest }}
{{- printf "%s@%s" $ref .image.digest }}
{{- else }}
{{- printf "%s:%s" $ref (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* Pod and container security contexts meeting the "restricted" Pod Security Standard. */}}
{{- define "kubetune.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "kubetune.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* Scheduling and pull settings of one component; pass (dict "c" .Values.x "ctx" $). */}}
{{- define "kubetune.scheduling" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "kubetune.suggestionAddress" -}}
{{ include "kubetune.fullname" . }}-suggestion.{{ .Release.Namespace }}.svc:50052
{{- end }}

{{- define "kubetune.metricsService" -}}
{{- or .Values.monitoring.service.enabled .Values.monitoring.serviceMonitor.enabled }}
{{- end }}

{{/* The namespace whose jobs the dashboard shows: set, the first watched one, or the release's. */}}
{{- define "kubetune.dashboardNamespace" -}}
{{- .Values.dashboard.namespace | default (first .Values.watchNamespaces) | default .Release.Namespace -}}
{{- end }}
