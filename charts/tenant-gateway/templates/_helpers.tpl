{{/*
Names are fixed, not derived from the release name: the operator binds the ClusterRoles
tenant-gateway-tenant-reader and tenant-gateway-gateway-reader by name, and its RBAC audit looks for
ServiceAccount and Deployment tenant-gateway. One release per cluster (the CRD and ClusterRoles are
cluster-scoped).

Labels are config/'s labels plus .Values.labels; no helm.sh/chart or managed-by labels, so that
`hack/helm check` compares the rendered objects with `kubectl kustomize config` as they are.
*/}}

{{/* metadata.labels of an object: tenant-gateway.labels (dict "component" "operator" "ctx" $) */}}
{{- define "tenant-gateway.labels" -}}
app.kubernetes.io/name: tenant-gateway
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with .ctx.Values.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The Deployment's selector (never changes across upgrades). */}}
{{- define "tenant-gateway.selectorLabels" -}}
app.kubernetes.io/name: tenant-gateway
app.kubernetes.io/component: operator
{{- end }}

{{/* A tag YAML read as a number (1.40 -> 1.4) would name another image: refuse it. */}}
{{- define "tenant-gateway.tag" -}}
{{- if kindIs "float64" .tag -}}
{{- fail (printf "%s is the number %v (YAML reads a tag such as 1.40 as 1.4): quote the tag in the values file, or use --set-string" .what .tag) -}}
{{- end -}}
{{- .tag -}}
{{- end }}

{{- define "tenant-gateway.image" -}}
{{ .Values.image.repository }}:{{ include "tenant-gateway.tag" (dict "tag" .Values.image.tag "what" "image.tag") }}
{{- end }}

{{/* TG_IMAGE: sidecarImage, each part defaulting to the operator image's. */}}
{{- define "tenant-gateway.sidecarImage" -}}
{{ .Values.sidecarImage.repository | default .Values.image.repository }}:{{ include "tenant-gateway.tag" (dict "tag" (.Values.sidecarImage.tag | default .Values.image.tag) "what" "sidecarImage.tag") }}
{{- end }}

{{- define "tenant-gateway.envoyImage" -}}
{{ .Values.envoyImage.repository }}:{{ include "tenant-gateway.tag" (dict "tag" .Values.envoyImage.tag "what" "envoyImage.tag") }}
{{- end }}
