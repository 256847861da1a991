{{/* The chart's name (nameOverride), also the app.kubernetes.io/name label. */}}
{{- define "kubefed.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Base name of every object: fullnameOverride; else the release name when it
contains the chart's name, else "<release>-<name>". */}}
{{- define "kubefed.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "kubefed.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
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
app.kubernetes.io/name: {{ include "kubefed.name" (index . 0) }}
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


{{/* Environment of both containers: the log settings, then the component's env. */}}
{{- define "kubefed.env" -}}
- name: KUBEFED_LOG
  value: {{ (index . 0).Values.logLevel | quote }}
- name: KUBEFED_LOG_FORMAT
  value: {{ (index . 0).Values.logFormat | quote }}
{{- with index . 1 }}
{{ toYaml . }}
{{- end }}
{{- end -}}


{{/* etcd TLS and authentication (ETCD_* variables of dns-server and the skydns writer). */}}
{{- define "kubefed.etcdEnv" -}}
{{- $e := .Values.etcd -}}
{{- if $e.tls.secretName }}
{{- with $e.tls.caKey }}
- name: ETCD_CA_FILE
  value: /etc/kubefed/etcd-tls/{{ . }}
{{- end }}
{{- if and $e.tls.certKey $e.tls.keyKey }}
- name: ETCD_CERT_FILE
  value: /etc/kubefed/etcd-tls/{{ $e.tls.certKey }}
- name: ETCD_KEY_FILE
  value: /etc/kubefed/etcd-tls/{{ $e.tls.keyKey }}
{{- end }}
{{- end }}
{{- with $e.tls.serverName }}
- name: ETCD_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- with $e.auth.username }}
- name: ETCD_USERNAME
  value: {{ . | quote }}
- name: ETCD_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "etcd.auth.passwordSecret.name: the Secret holding the etcd password" $e.auth.passwordSecret.name }}
      key: {{ $e.auth.passwordSecret.key }}
{{- end }}
{{- end -}}

{{- define "kubefed.etcdVolumeMounts" -}}
{{- if .Values.etcd.tls.secretName }}
- name: etcd-tls
  mountPath: /etc/kubefed/etcd-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "kubefed.etcdVolumes" -}}
{{- if .Values.etcd.tls.secretName }}
- name: etcd-tls
  secret:
    secretName: {{ .Values.etcd.tls.secretName }}
{{- end }}
{{- end -}}
