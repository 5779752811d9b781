{{/*
The notification sidecar, for an application's pod. This file is self-contained: copy it
into your own chart's templates/ and include the named templates (docs/helm.md).

  initContainers:   # native sidecar (Kubernetes >= 1.29): starts first, stops last
    {{- include "emailsettings-operator.sidecar.container" (dict
          "emailSettings" "default"
          "image" "ghcr.io/emailsettings/emailsettings-operator:0.1.0"
          "passwordSecret" "smtp-credentials") | nindent 4 }}
  volumes:
    {{- include "emailsettings-operator.sidecar.volumes" (dict
          "passwordSecret" "smtp-credentials") | nindent 4 }}

Arguments of both (a dict; only emailSettings and image are required):
  emailSettings   name of the EmailSettings to follow (same namespace as the pod)
  image           the emailsettings-operator image
  pullPolicy      image pull policy (default IfNotPresent)
  passwordFrom    "file" (default): the password Secret mounted read-only, no Secret RBAC;
                  "api": read through the API (the pod's account then needs get on it)
  passwordSecret  with "file": the Secret named by spec.smtp.passwordSecretRef (mounted whole,
                  the sidecar reads the key the EmailSettings names); empty: no password
  caBundle        with "file": {kind: Secret|ConfigMap, name: ...} of spec.smtp.tls.caBundleRef
  templates       a ConfigMap of subject/body template overrides (<event>.subject.j2 ...)
  port            notification API on 127.0.0.1 (default 8090): the app posts to
                  http://127.0.0.1:<port>/v1/notifications
  probePort       /healthz, /readyz and /metrics on all interfaces (default 8091)
  smtpPort        SMTP intake on 127.0.0.1 (default 2525; 0 turns it off): applications that
                  already send mail use host 127.0.0.1, this port, no TLS and no AUTH
  resources       container resources
  native          true (default): render restartPolicy: Always, for initContainers;
                  false: a plain container for spec.containers
  spoolSizeLimit  size limit of the spool emptyDir (default 64Mi)
  spoolVolume     a volume source for the spool instead of the emptyDir (e.g.
                  {persistentVolumeClaim: {claimName: app-spool}}) to survive pod deletion
*/}}

{{- define "emailsettings-operator.sidecar.container" -}}
{{- $port := .port | default 8090 | int -}}
{{- $probePort := .probePort | default 8091 | int -}}
{{- $smtpPort := ternary 2525 .smtpPort (kindIs "invalid" .smtpPort) | int -}}
{{- $passwordFrom := .passwordFrom | default "file" -}}
- name: emailsettings-sidecar
  image: {{ required "emailsettings-operator.sidecar.container: image is required" .image }}
  imagePullPolicy: {{ .pullPolicy | default "IfNotPresent" }}
  command: ["emailsettings-sidecar"]
  {{- if (ternary true .native (kindIs "invalid" .native)) }}
  restartPolicy: Always
  {{- end }}
  env:
    - name: EMAILSETTINGS_NAME
      value: {{ required "emailsettings-operator.sidecar.container: emailSettings is required" .emailSettings | quote }}
    - name: EMAILSETTINGS_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: EMAILSETTINGS_LISTEN
      value: "127.0.0.1:{{ $port }}"
    - name: EMAILSETTINGS_PROBE_LISTEN
      value: ":{{ $probePort }}"
    - name: EMAILSETTINGS_SPOOL_DIR
      value: /var/spool/emailsettings
    - name: EMAILSETTINGS_SECRET_SOURCE
      value: {{ $passwordFrom | quote }}
    - name: EMAILSETTINGS_SECRET_DIR
      value: /etc/emailsettings/smtp-secret
    - name: EMAILSETTINGS_CA_DIR
      value: /etc/emailsettings/smtp-ca
    - name: EMAILSETTINGS_TEMPLATES_DIR
      value: /etc/emailsettings/templates
    {{- if gt $smtpPort 0 }}
    - name: EMAILSETTINGS_SMTP_LISTEN
      value: "127.0.0.1:{{ $smtpPort }}"
    {{- end }}
    - name: PYTHONOPTIMIZE  # drops docstrings and asserts: a few MiB less resident memory
      value: "2"
  ports:
    - name: es-probes
      containerPort: {{ $probePort }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: es-probes
    periodSeconds: 2
    failureThreshold: 30
  livenessProbe:
    httpGet:
      path: /healthz
      port: es-probes
    periodSeconds: 20
    timeoutSeconds: 5
  # /readyz fails only when notifications cannot be accepted (spool full or broken); held
  # delivery (settings not Ready) is reported there but does not make the pod unready.
  readinessProbe:
    httpGet:
      path: /readyz
      port: es-probes
    periodSeconds: 10
    timeoutSeconds: 5
  resources:
    {{- toYaml (.resources | default (dict "requests" (dict "cpu" "10m" "memory" "48Mi") "limits" (dict "memory" "128Mi"))) | nindent 4 }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    runAsNonRoot: true
    capabilities:
      drop:
        - ALL
  volumeMounts:
    - name: emailsettings-spool
      mountPath: /var/spool/emailsettings
    - name: emailsettings-tmp
      mountPath: /tmp
    {{- if and (eq $passwordFrom "file") .passwordSecret }}
    - name: emailsettings-smtp-secret
      mountPath: /etc/emailsettings/smtp-secret
      readOnly: true
    {{- end }}
    {{- if and (eq $passwordFrom "file") .caBundle }}
    - name: emailsettings-smtp-ca
      mountPath: /etc/emailsettings/smtp-ca
      readOnly: true
    {{- end }}
    {{- if .templates }}
    - name: emailsettings-templates
      mountPath: /etc/emailsettings/templates
      readOnly: true
    {{- end }}
{{- end -}}

{{- define "emailsettings-operator.sidecar.volumes" -}}
{{- $passwordFrom := .passwordFrom | default "file" -}}
- name: emailsettings-spool
  {{- if .spoolVolume }}
  {{- toYaml .spoolVolume | nindent 2 }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .spoolSizeLimit | default "64Mi" }}
  {{- end }}
- name: emailsettings-tmp
  emptyDir:
    sizeLimit: 16Mi
{{- if and (eq $passwordFrom "file") .passwordSecret }}
- name: emailsettings-smtp-secret
  secret:
    secretName: {{ .passwordSecret }}
    defaultMode: 0440
{{- end }}
{{- if and (eq $passwordFrom "file") .caBundle }}
- name: emailsettings-smtp-ca
  {{- if eq (.caBundle.kind | default "Secret") "ConfigMap" }}
  configMap:
    name: {{ .caBundle.name }}
  {{- else }}
  secret:
    secretName: {{ .caBundle.name }}
  {{- end }}
{{- end }}
{{- if .templates }}
- name: emailsettings-templates
  configMap:
    name: {{ .templates }}
{{- end }}
{{- end -}}

{{/*
The Role rules of a sidecar's account: read exactly one EmailSettings (resourceNames; the
sidecar lists and watches it with a metadata.name field selector), and with passwordFrom
"api" get exactly the one password Secret (and CA bundle), nothing else.
Args: dict "emailSettings" name "passwordFrom" "file|api" "passwordSecret" name
"caBundle" {kind,name}.
*/}}
{{- define "emailsettings-operator.sidecar.rules" -}}
- apiGroups: ["emailsettings.io"]
  resources: ["emailsettings"]
  resourceNames: [{{ .emailSettings | quote }}]
  verbs: ["get", "list", "watch"]
{{- if eq (.passwordFrom | default "file") "api" }}
{{- if .passwordSecret }}
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: [{{ .passwordSecret | quote }}]
  verbs: ["get"]
{{- end }}
{{- with .caBundle }}
- apiGroups: [""]
  resources: [{{ ternary "configmaps" "secrets" (eq (.kind | default "Secret") "ConfigMap") | quote }}]
  resourceNames: [{{ .name | quote }}]
  verbs: ["get"]
{{- end }}
{{- end }}
{{- end -}}
