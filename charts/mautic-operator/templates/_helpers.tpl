{{/* Object name prefix: the release name when it holds the chart name, else <release>-<chart>. */}}
{{- define "mautic-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: the same as config/default's, plus the release. */}}
{{- define "mautic-operator.selectorLabels" -}}
control-plane: controller-manager
app.kubernetes.io/name: mautic-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Helm's own labels, alone on the objects config/ generates without labels (the manager role). */}}
{{- define "mautic-operator.helmLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "mautic-operator.labels" -}}
app.kubernetes.io/name: mautic-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of the manager's own objects (Deployment, Service, monitoring). */}}
{{- define "mautic-operator.managerLabels" -}}
control-plane: controller-manager
{{ include "mautic-operator.labels" . }}
{{- end -}}

{{/* The manager's ServiceAccount. */}}
{{- define "mautic-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-controller-manager" (include "mautic-operator.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name an existing ServiceAccount" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference: repository@digest, else repository:tag (tag default: appVersion). */}}
{{- define "mautic-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Whether leader election is on: always with more than one replica. */}}
{{- define "mautic-operator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) -}}true{{- end -}}
{{- end -}}

{{/* Whether metrics are served over HTTPS with Kubernetes authentication (never in namespaced mode). */}}
{{- define "mautic-operator.metricsSecure" -}}
{{- if and .Values.metrics.secure (not .Values.rbac.namespaced) -}}true{{- end -}}
{{- end -}}

{{/* The metrics port: 8080 in namespaced mode, else metrics.port. */}}
{{- define "mautic-operator.metricsPort" -}}
{{- if .Values.rbac.namespaced -}}8080{{- else -}}{{ .Values.metrics.port }}{{- end -}}
{{- end -}}

{{/* Whether the Prometheus Operator API is served (or passed with --api-versions). */}}
{{- define "mautic-operator.hasMonitoringAPI" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true{{- end -}}
{{- end -}}

{{/* Kind of the manager's role: Role in namespaced mode, else ClusterRole. */}}
{{- define "mautic-operator.managerRoleKind" -}}
{{- if .Values.rbac.namespaced -}}Role{{- else -}}ClusterRole{{- end -}}
{{- end -}}
