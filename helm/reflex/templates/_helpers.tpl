{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, overridable. */}}
{{- define "reflex.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full object name: the release name, plus the chart name unless the release already
contains it. Truncated to 63 characters, the DNS label limit. */}}
{{- define "reflex.fullname" -}}
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

{{/* Labels on every object, the pods included: Kubernetes' recommended
app.kubernetes.io/* set plus the chart, so `kubectl get all -l app.kubernetes.io/instance=<release>`
and cost or inventory tools find everything the release made. */}}
{{- define "reflex.labels" -}}
{{ include "reflex.commonLabels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{/* The labels above without app.kubernetes.io/component, for objects that are not the
controller (the `helm test` Pod). */}}
{{- define "reflex.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "reflex.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: reflex
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pods; never change them (Deployment selectors are immutable). */}}
{{- define "reflex.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reflex.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount name. */}}
{{- define "reflex.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "reflex.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding the rule files. */}}
{{- define "reflex.rulesConfigMap" -}}
{{- default (printf "%s-rules" (include "reflex.fullname" .)) .Values.rules.existingConfigMap }}
{{- end }}

{{/* The RBAC rules: the values' override, or what `reflex rbac` generated for the bundled rules
(files/rbac.json: a v1 List of one ClusterRole, or Roles for literal namespaces). Returns a JSON
object {"cluster": [...], "namespaced": {"<ns>": [...]}, "any": [...]} so the templates can
decide where each rule goes. */}}
{{- define "reflex.rbacRules" -}}
{{- $out := dict "any" (list) "roles" (dict) }}
{{- if .Values.rbac.rules }}
{{- $_ := set $out "any" .Values.rbac.rules }}
{{- else }}
{{- $generated := .Files.Get "files/rbac.json" | fromJson }}
{{- range $item := $generated.items }}
{{- if eq $item.kind "ClusterRole" }}
{{- $_ := set $out "any" (concat $out.any $item.rules) }}
{{- else }}
{{- $_ := set $out.roles $item.metadata.namespace $item.rules }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* Resources that are not namespaced (a Role cannot grant them). The common ones; a rule on
another cluster-scoped resource belongs in rbac.rules with rbac.namespaces empty. */}}
{{- define "reflex.clusterScopedResources" -}}
{{- toJson (list "nodes" "namespaces" "persistentvolumes" "storageclasses" "clusterroles" "clusterrolebindings" "customresourcedefinitions" "priorityclasses" "ingressclasses" "runtimeclasses" "csidrivers" "csinodes" "volumeattachments" "certificatesigningrequests" "mutatingwebhookconfigurations" "validatingwebhookconfigurations" "apiservices") }}
{{- end }}

{{/* The configuration file as YAML text; its checksum restarts the pods when it changes. */}}
{{- define "reflex.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $server := get $config "server" | default dict }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%v" .Values.service.port) }}
{{- if .Values.ingest.existingSecret }}
{{- $ingest := get $server "ingest" | default dict }}
{{- $_ := set $ingest "token_file" "/etc/reflex/ingest/token" }}
{{- $_ := set $server "ingest" $ingest }}
{{- end }}
{{- $_ := set $config "server" $server }}
{{- $_ := set $config "rules" (merge (dict "dir" "/etc/reflex/rules") (get $config "rules" | default dict)) }}
{{- $_ := set $config.rules "dir" "/etc/reflex/rules" }}
{{- if .Values.kafka.tls.existingSecret }}
{{- $kafka := get $config "kafka" | default dict }}
{{- $client := get $kafka "client" | default dict }}
{{- $_ := set $client "security.protocol" (get $client "security.protocol" | default "SSL") }}
{{- $_ := set $client "ssl.ca.location" (printf "/etc/reflex/kafka-tls/%s" .Values.kafka.tls.caKey) }}
{{- if .Values.kafka.tls.certKey }}
{{- $_ := set $client "ssl.certificate.location" (printf "/etc/reflex/kafka-tls/%s" .Values.kafka.tls.certKey) }}
{{- end }}
{{- if .Values.kafka.tls.keyKey }}
{{- $_ := set $client "ssl.key.location" (printf "/etc/reflex/kafka-tls/%s" .Values.kafka.tls.keyKey) }}
{{- end }}
{{- $_ := set $kafka "client" $client }}
{{- $_ := set $config "kafka" $kafka }}
{{- end }}
{{- toYaml $config }}
{{- end }}
