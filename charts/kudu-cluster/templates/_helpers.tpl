{{/* Name of the KuduCluster: .Values.name, else the release name. */}}
{{- define "kudu-cluster.name" -}}
{{- $name := default .Release.Name .Values.name -}}
{{- if gt (len $name) 40 -}}
{{- fail (printf "the KuduCluster name %q is %d characters; at most 40 are allowed (set .Values.name)" $name (len $name)) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "the KuduCluster name %q must be a DNS label starting with a letter (set .Values.name)" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/* Namespace of the KuduCluster: .Values.namespace, else the release namespace. */}}
{{- define "kudu-cluster.namespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{/* The image reference: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "kudu-cluster.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Labels on the KuduCluster. */}}
{{- define "kudu-cluster.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The spec of one role from (dict "role" "masters" "values" .Values.masters); empty settings are left out so the CRD's defaults apply. Refuses what the schema cannot say clearly: a zero size, flags the operator sets. */}}
{{- define "kudu-cluster.role" -}}
{{- $role := .role -}}
{{- with .values -}}
{{- if regexMatch "^\\+?(0+(\\.0*)?|\\.0+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$" (toString .storage.size) }}
{{- fail (printf "%s.storage.size is %q; it must be greater than zero" $role (toString .storage.size)) }}
{{- end }}
{{- range .flags }}
{{- if regexMatch "^--(data-dir|rpc-addr|http-addr|master-addresses|location-mapping-cmd)(=.*)?$" . }}
{{- fail (printf "%s.flags contains %q: flags set by the operator (--data-dir, --rpc-addr, --http-addr, --master-addresses, --location-mapping-cmd) cannot be overridden" $role .) }}
{{- end }}
{{- end }}
replicas: {{ .replicas }}
{{- with .resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
storage:
  size: {{ .storage.size | quote }}
  {{- with .storage.storageClassName }}
  storageClassName: {{ . | quote }}
  {{- end }}
{{- with .flags }}
flags:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $overrides := .podOverrides | default dict }}
{{- if or $overrides.nodeSelector $overrides.tolerations $overrides.affinity $overrides.annotations }}
podOverrides:
  {{- with $overrides.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $overrides.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $overrides.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $overrides.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
{{- end -}}
