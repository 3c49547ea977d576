{{/* Chart name, shortened to a DNS label. */}}
{{- define "sandpit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Base name of every object: the release name if it already says sandpit. */}}
{{- define "sandpit.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sandpit.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "sandpit.labels" -}}
helm.sh/chart: {{ include "sandpit.chart" . }}
app.kubernetes.io/name: {{ include "sandpit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sandpit
{{- end }}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "controller"). */}}
{{- define "sandpit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sandpit.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "sandpit.componentLabels" -}}
{{ include "sandpit.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "sandpit.controller.fullname" -}}
{{- printf "%s-controller" (include "sandpit.fullname" .) }}
{{- end }}

{{- define "sandpit.agent.fullname" -}}
{{- printf "%s-agent" (include "sandpit.fullname" .) }}
{{- end }}

{{- define "sandpit.controller.serviceAccountName" -}}
{{- default (include "sandpit.controller.fullname" .) .Values.serviceAccount.controller.name }}
{{- end }}

{{- define "sandpit.agent.serviceAccountName" -}}
{{- default (include "sandpit.agent.fullname" .) .Values.serviceAccount.agent.name }}
{{- end }}

{{/* The username the API server gives a ServiceAccount's tokens. */}}
{{- define "sandpit.agent.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "sandpit.agent.serviceAccountName" .) }}
{{- end }}

{{/* An image reference from {repository, tag, digest}: call with (dict "image" .Values.x.image "ctx" $). */}}
{{- define "sandpit.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end }}

{{/* Names of the TLS Secrets. */}}
{{- define "sandpit.tls.caSecret" -}}
{{- printf "%s-ca" (include "sandpit.fullname" .) }}
{{- end }}

{{- define "sandpit.tls.controllerSecret" -}}
{{- if eq .Values.tls.method "provided" }}
{{- .Values.tls.provided.controllerSecretName }}
{{- else }}
{{- printf "%s-controller-tls" (include "sandpit.fullname" .) }}
{{- end }}
{{- end }}

{{- define "sandpit.tls.agentSecret" -}}
{{- if eq .Values.tls.method "provided" }}
{{- .Values.tls.provided.agentSecretName }}
{{- else }}
{{- printf "%s-agent-tls" (include "sandpit.fullname" .) }}
{{- end }}
{{- end }}

{{/* Checks across values that a JSON schema cannot say clearly. */}}
{{- define "sandpit.validate" -}}
{{- if and (gt (int .Values.controller.replicas) 1) (not .Values.controller.leaderElection.enabled) }}
{{- fail "controller.replicas > 1 needs controller.leaderElection.enabled=true: two active controllers would fight over every Sandbox" }}
{{- end }}
{{- if and .Values.controller.podDisruptionBudget.enabled (ge (int .Values.controller.podDisruptionBudget.minAvailable) (int .Values.controller.replicas)) (gt (int .Values.controller.replicas) 1) }}
{{- fail (printf "controller.podDisruptionBudget.minAvailable (%d) must be below controller.replicas (%d), or no node could ever be drained" (int .Values.controller.podDisruptionBudget.minAvailable) (int .Values.controller.replicas)) }}
{{- end }}
{{- if eq .Values.tls.method "provided" }}
{{- if or (not .Values.tls.provided.controllerSecretName) (not .Values.tls.provided.agentSecretName) }}
{{- fail "tls.method=provided needs tls.provided.controllerSecretName and tls.provided.agentSecretName (Secrets with tls.crt, tls.key and ca.crt)" }}
{{- end }}
{{- end }}
{{- if and (eq .Values.tls.method "certManager") (not .Values.tls.certManager.agentDNSNames) }}
{{- fail "tls.method=certManager needs tls.certManager.agentDNSNames: the controller verifies each node's name in the agent's certificate, so list the node names or a wildcard covering them (e.g. *.ec2.internal)" }}
{{- end }}
{{- if and (not .Values.agent.privileged) .Values.agent.allowPrivileged }}
{{- fail "agent.allowPrivileged=true needs agent.privileged=true: an unprivileged agent cannot give a sandbox more than it has" }}
{{- end }}
{{- with .Values.agent.registryCA }}
{{- if gt (len (compact (list .configMap .secret .hostPath))) 1 }}
{{- fail "agent.registryCA: set one of configMap, secret or hostPath" }}
{{- end }}
{{- end }}
{{- if not .Values.agent.privileged }}
{{- range .Values.agent.allowCapabilities }}
{{- if not (has . $.Values.agent.capabilities) }}
{{- fail (printf "agent.allowCapabilities has %s, which the unprivileged agent lacks: add it to agent.capabilities too" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whether the agent is given a registry CA (agent.registryCA), and the file it reads it from. */}}
{{- define "sandpit.agent.registryCA" -}}
{{- with .Values.agent.registryCA }}{{ if or .configMap .secret .hostPath }}true{{ end }}{{ end }}
{{- end }}
{{- define "sandpit.agent.registryCAFile" -}}
{{- if .Values.agent.registryCA.hostPath }}/etc/sandpit/registry-ca{{ else }}/etc/sandpit/registry-ca/ca.crt{{ end }}
{{- end }}
