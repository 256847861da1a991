{{/* Base name of every object: the release name, or "<release>-kubefed". */}}
{{- define "kubefed.fullname" -}}
{{- if contains "kubefed" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-kubefed" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubefed.cm" -}}{{ include "kubefed.fullname" . }}-controller-manager{{- end -}}
{{- define "kubefed.dns" -}}{{ include "kubefed.fullname" . }}-dns-server{{- end -}}

{{/* Labels; pass (list . "component"). */}}
{{- define "kubefed.labels" -}}
{{ include "kubefed.selectorLabels" . }}
app.kubernetes.io/part-of: kubefed
app.kubernetes.io/version: {{ (index . 0).Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ (index . 0).Release.Service }}
helm.sh/chart: {{ printf "%s-%s" (index . 0).Chart.Name (index . 0).Chart.Version }}
{{- end -}}

{{- define "kubefed.selectorLabels" -}}
app.kubernetes.io/name: kubefed
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "kubefed.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Restricted-profile container security context; pass a list of added capabilities. */}}
{{- define "kubefed.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}
