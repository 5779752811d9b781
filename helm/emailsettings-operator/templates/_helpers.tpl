{{/* Names ---------------------------------------------------------------- */}}

{{- define "emailsettings-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "emailsettings-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "emailsettings-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels --------------------------------------------------------------- */}}

{{- define "emailsettings-operator.labels" -}}
helm.sh/chart: {{ include "emailsettings-operator.chart" . }}
{{ include "emailsettings-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: emailsettings-operator
{{- end -}}

{{- define "emailsettings-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "emailsettings-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of release objects that are not the operator (CRDs, settings, sidecar). */}}
{{- define "emailsettings-operator.commonLabels" -}}
helm.sh/chart: {{ include "emailsettings-operator.chart" . }}
app.kubernetes.io/name: {{ include "emailsettings-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: emailsettings-operator
{{- end -}}

{{/* Image ---------------------------------------------------------------- */}}

{{- define "emailsettings-operator.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Accounts ------------------------------------------------------------- */}}

{{- define "emailsettings-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "emailsettings-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "emailsettings-operator.sidecarServiceAccountName" -}}
{{- default (printf "%s-notifier" (include "emailsettings-operator.fullname" .)) .Values.sidecar.serviceAccount.name -}}
{{- end -}}

{{/* Watch scope ---------------------------------------------------------- */}}

{{/* The watched namespaces of namespaced mode, as a JSON list (empty in cluster mode). */}}
{{- define "emailsettings-operator.watchNamespaces" -}}
{{- if .Values.watch.allNamespaces -}}
{{- list | toJson -}}
{{- else if .Values.watch.namespaces -}}
{{- .Values.watch.namespaces | uniq | toJson -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{/* Peering -------------------------------------------------------------- */}}

{{- define "emailsettings-operator.peeringEnabled" -}}
{{- if or .Values.peering.enabled (gt (int .Values.operator.replicas) 1) -}}true{{- end -}}
{{- end -}}

{{- define "emailsettings-operator.peeringName" -}}
{{- default (include "emailsettings-operator.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/* Settings ------------------------------------------------------------- */}}

{{- define "emailsettings-operator.settingsNamespace" -}}
{{- default .Release.Namespace .Values.emailSettings.namespace -}}
{{- end -}}

{{- define "emailsettings-operator.passwordSecretName" -}}
{{- with .Values.emailSettings.smtp.password -}}
{{- if .existingSecret -}}
{{- .existingSecret -}}
{{- else if .value -}}
{{- printf "%s-smtp-password" $.Values.emailSettings.name | trunc 253 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A recipient list from values: a YAML list, or the seed page's string form
"a@example.com; b@example.com". Semicolons, commas and newlines separate entries
(the same rule as emailsettings.api.addresses.split_recipients), in list items too.
Renders a JSON list.
*/}}
{{- define "emailsettings-operator.addressList" -}}
{{- $items := . -}}
{{- if kindIs "string" $items -}}
{{- $items = list $items -}}
{{- end -}}
{{- $out := list -}}
{{- range $items -}}
{{- range regexSplit "[;,\n]" (toString .) -1 -}}
{{- $address := trim . -}}
{{- if $address -}}
{{- $out = append $out $address -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $out | toJson -}}
{{- end -}}

{{/* Pod Security: the securityContext every container of this chart gets. */}}
{{- define "emailsettings-operator.restrictedContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
{{- end -}}

{{- define "emailsettings-operator.restrictedPodSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Objects of a kind whose CRD this same release installs (EmailSettings, kopf peerings).
Helm builds the whole release manifest before it creates anything, so on a first install
into a cluster without the CRD such an object cannot be part of the manifest ("no matches
for kind ... ensure CRDs are installed first"). In that one case it is created as a
post-install hook, after the CRD, marked emailsettings.io/created-by=helm-install-hook and
carrying Helm's ownership metadata, so the next `helm upgrade` can adopt it as an ordinary
release object (for the EmailSettings see emailsettings.yaml: Helm adopts without
patching, so that upgrade re-creates it once from the current values). When the API
already exists (upgrades, CRDs managed elsewhere) it is an ordinary object from the start.
Args: dict "root" $ "gvk" "group/version/Kind". Renders "true" to defer.
*/}}
{{- define "emailsettings-operator.deferCustomResource" -}}
{{- if and .root.Release.IsInstall (not (.root.Capabilities.APIVersions.Has .gvk)) -}}true{{- end -}}
{{- end -}}

{{/* Annotations of a deferred custom resource (see above); args as above. */}}
{{- define "emailsettings-operator.deferredAnnotations" -}}
{{- if include "emailsettings-operator.deferCustomResource" . -}}
helm.sh/hook: post-install
helm.sh/hook-weight: "-10"
helm.sh/hook-delete-policy: hook-failed
emailsettings.io/created-by: helm-install-hook
meta.helm.sh/release-name: {{ .root.Release.Name }}
meta.helm.sh/release-namespace: {{ .root.Release.Namespace }}
{{- end -}}
{{- end -}}

{{/*
The operator's API use, and nothing more:
  emailsettings            get, list, watch   (it never writes the spec)
  emailsettings/status     get, patch         (the whole status in one patch)
  secrets, configmaps      get, list, watch   (passwords and CA bundles, read-only)
  events (core, events.k8s.io)  create, patch
  kopf peering (only with peering): get, list, watch; patch only the one peering object
In cluster mode kopf watches cluster-wide (no namespace listing, no CRD reads).
*/}}
{{- define "emailsettings-operator.operatorRules" -}}
- apiGroups: ["emailsettings.io"]
  resources: ["emailsettings"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["emailsettings.io"]
  resources: ["emailsettings/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .peering }}
- apiGroups: ["kopf.dev"]
  resources: [{{ .peeringResource | quote }}]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: [{{ .peeringResource | quote }}]
  resourceNames: [{{ .peeringName | quote }}]
  verbs: ["patch"]
{{- end }}
{{- end }}

{{/* The arguments of the sidecar templates, from this chart's values. */}}
{{- define "emailsettings-operator.sidecarArgs" -}}
{{- $es := .Values.emailSettings -}}
{{- $secret := default (include "emailsettings-operator.passwordSecretName" .) .Values.sidecar.passwordSecret.name -}}
{{- $ca := dict -}}
{{- if and $es.smtp.tls.caBundleRef $es.smtp.tls.caBundleRef.name -}}
{{- $ca = dict "kind" ($es.smtp.tls.caBundleRef.kind | default "Secret") "name" $es.smtp.tls.caBundleRef.name -}}
{{- end -}}
{{- toJson (dict
  "emailSettings" (default $es.name .Values.sidecar.emailSettingsName)
  "image" (include "emailsettings-operator.image" .)
  "pullPolicy" .Values.image.pullPolicy
  "passwordFrom" .Values.sidecar.passwordFrom
  "passwordSecret" $secret
  "caBundle" $ca
  "port" .Values.sidecar.port
  "probePort" .Values.sidecar.probePort
  "smtpPort" .Values.sidecar.smtpPort
  "resources" .Values.sidecar.resources
  "spoolSizeLimit" .Values.sidecar.spoolSizeLimit) -}}
{{- end -}}
