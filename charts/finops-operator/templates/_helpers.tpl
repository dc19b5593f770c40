{{/*
The objects keep the names of manifests/ whatever the release is called: the
operator finds its Lease, webhook configurations and certificate Secret by these
names, so one release per cluster.
*/}}
{{- define "finops-operator.name" -}}finops-operator{{- end -}}

{{/* Labels on every object: the selector label of manifests/ plus Helm's own. */}}
{{- define "finops-operator.labels" -}}
app.kubernetes.io/name: finops-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "finops-operator.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/*
The namespaces neither webhook is called for and the operator never checks:
config.exemptNamespaces (the operator's default when left out) and always the
release's own namespace, so the operator can start while it is down.
*/}}
{{- define "finops-operator.exemptNamespaces" -}}
{{- $listed := list "kube-system" "finops-system" -}}
{{- if hasKey .Values.config "exemptNamespaces" -}}{{- $listed = .Values.config.exemptNamespaces | default (list) -}}{{- end -}}
{{- toJson (append $listed .Release.Namespace | uniq) -}}
{{- end -}}

{{/* The configuration file: `config` with the chart's switches laid over it. */}}
{{- define "finops-operator.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $_ := set $config "exemptNamespaces" (include "finops-operator.exemptNamespaces" . | fromJsonArray) -}}
{{- if .Values.metrics.secure -}}
{{- $metrics := deepCopy (get $config "metrics" | default dict) -}}
{{- $_ := set $metrics "secure" true -}}
{{- $_ := set $config "metrics" $metrics -}}
{{- end -}}
{{- if .Values.admissionPolicies.enabled -}}
{{- $policies := deepCopy (get $config "admissionPolicies" | default dict) -}}
{{- $_ := set $policies "enabled" true -}}
{{- $_ := set $config "admissionPolicies" $policies -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}


{{/* "true" when /metrics is served over HTTPS behind the token check (the chart's
switch or the configuration's own key): the probes and the ServiceMonitor follow. */}}
{{- define "finops-operator.metricsSecure" -}}
{{- if or .Values.metrics.secure (get (get .Values.config "metrics" | default dict) "secure") -}}true{{- end -}}
{{- end -}}
