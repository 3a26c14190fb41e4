{{/* Names ------------------------------------------------------------------------- */}}
{{- define "edge-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "edge-gateway.fullname" -}}
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

{{/* The component's resource name: <fullname>-<component>, within 63 characters. */}}
{{- define "edge-gateway.componentName" -}}
{{- printf "%s-%s" (include "edge-gateway.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component -}}
{{- end -}}

{{- define "edge-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels ------------------------------------------------------------------------ */}}
{{- define "edge-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edge-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "edge-gateway.labels" -}}
helm.sh/chart: {{ include "edge-gateway.chart" . }}
{{ include "edge-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: galaxy-edge-gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* dict "root" $ "component" "public-rest" */}}
{{- define "edge-gateway.componentSelectorLabels" -}}
{{ include "edge-gateway.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "edge-gateway.componentLabels" -}}
{{ include "edge-gateway.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The three services: component name, values key, Python module --------------------- */}}
{{- define "edge-gateway.components" -}}
public-rest:
  key: publicRest
  module: public_rest
  kind: http
edge-grpc:
  key: edgeGrpc
  module: edge_grpc
  kind: grpc
push-hub:
  key: pushHub
  module: push_hub
  kind: grpc
{{- end -}}

{{/* Image reference of a component: dict "root" $ "svc" <service values> */}}
{{- define "edge-gateway.image" -}}
{{- $img := .svc.image -}}
{{- $repo := $img.repository -}}
{{- with .root.Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo -}}
{{- end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion (default .root.Values.image.tag $img.tag) | toString) -}}
{{- end -}}
{{- end -}}

{{- define "edge-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "edge-gateway.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secrets: the Secret name each one is read from ------------------------------------ */}}
{{- define "edge-gateway.secretName" -}}
{{- $s := index .root.Values.secrets .which -}}
{{- if $s.existingSecret -}}
{{- $s.existingSecret -}}
{{- else -}}
{{- include "edge-gateway.componentName" (dict "root" .root "component" (printf "%s-secret" (.which | kebabcase))) -}}
{{- end -}}
{{- end -}}

{{/* Where the secret files are mounted in the containers. */}}
{{- define "edge-gateway.signerDir" -}}/etc/edge-gateway/response-signer{{- end -}}
{{- define "edge-gateway.hmacDir" -}}/etc/edge-gateway/backend-hmac{{- end -}}
{{- define "edge-gateway.routeTableKeyDir" -}}/etc/edge-gateway/route-table-key{{- end -}}

{{/* The route-table key Secret volume (edge-grpc and the edge-operator). */}}
{{- define "edge-gateway.routeTableKeyVolume" -}}
- name: route-table-key
  secret:
    secretName: {{ include "edge-gateway.secretName" (dict "root" . "which" "routeTableKey") }}
    defaultMode: 0440
    items:
      - key: {{ .Values.secrets.routeTableKey.key }}
        path: {{ .Values.secrets.routeTableKey.key }}
{{- end -}}

{{/* The edge-operator ------------------------------------------------------------------ */}}
{{- define "edge-gateway.operatorName" -}}
{{- include "edge-gateway.componentName" (dict "root" . "component" "edge-operator") -}}
{{- end -}}

{{- define "edge-gateway.operatorServiceAccountName" -}}
{{- $sa := .Values.operator.serviceAccount -}}
{{- if $sa.create -}}
{{- default (include "edge-gateway.operatorName" .) $sa.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" $sa.name -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the operator watches (a YAML list; empty when cluster-wide). */}}
{{- define "edge-gateway.operatorNamespaces" -}}
{{- $op := .Values.operator -}}
{{- if and $op.clusterWide $op.watchNamespaces -}}
{{- fail "operator.clusterWide watches every namespace: leave operator.watchNamespaces empty" -}}
{{- end -}}
{{- if $op.clusterWide -}}
[]
{{- else -}}
{{- toYaml (uniq (default (list .Release.Namespace) $op.watchNamespaces)) -}}
{{- end -}}
{{- end -}}

{{/*
What the operator may do, in each namespace it watches (Role) or everywhere (ClusterRole);
nothing else. Secrets: list/watch for the in-memory index of the route Secrets (labelled
gateway.galaxy.dev/route-secret=true); RBAC cannot restrict a rule by label, so this lets
it read every Secret of a watched namespace. Events: kopf posts handler events.
*/}}
{{- define "edge-gateway.operatorRules" -}}
- apiGroups: [gateway.galaxy.dev]
  resources: [gatewayroutes]
  verbs: [list, watch, patch]
- apiGroups: [gateway.galaxy.dev]
  resources: [gatewayroutes/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/*
Every GATEWAY_* (and OTEL_*) variable the shared ConfigMap carries, mapped to its path
under .Values.config. The variables not listed here are set per Deployment: the listen
addresses (from the ports), the Redis password (a Secret), the secret file paths (the
mounted Secrets), OTEL_SERVICE_NAME (the component) and the edge-operator's own
GATEWAY_OPERATOR_* settings (from .Values.operator). tests/k8s checks that the two
together are exactly edgecore.config.known_variables().
*/}}
{{- define "edge-gateway.configVariables" -}}
GATEWAY_LOG_LEVEL: logLevel
GATEWAY_SHUTDOWN_TIMEOUT: shutdownTimeout
OTEL_TRACES_EXPORTER: telemetry.tracesExporter
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: telemetry.otlpTracesProtocol
OTEL_EXPORTER_OTLP_PROTOCOL: telemetry.otlpProtocol
OTEL_EXPORTER_OTLP_ENDPOINT: telemetry.otlpEndpoint
GATEWAY_ADMIN_HTTP_READ_HEADER_TIMEOUT: admin.readHeaderTimeout
GATEWAY_ADMIN_HTTP_READ_TIMEOUT: admin.readTimeout
GATEWAY_ADMIN_HTTP_IDLE_TIMEOUT: admin.idleTimeout
GATEWAY_PUBLIC_HTTP_READ_HEADER_TIMEOUT: publicHttp.readHeaderTimeout
GATEWAY_PUBLIC_HTTP_READ_TIMEOUT: publicHttp.readTimeout
GATEWAY_PUBLIC_HTTP_IDLE_TIMEOUT: publicHttp.idleTimeout
GATEWAY_PUBLIC_AUTH_UPSTREAM_TIMEOUT: publicHttp.authUpstreamTimeout
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_AUTH_MAX_BODY_BYTES: publicAntiAbuse.publicAuth.maxBodyBytes
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_AUTH_RATE_LIMIT_REQUESTS: publicAntiAbuse.publicAuth.requests
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_AUTH_RATE_LIMIT_WINDOW: publicAntiAbuse.publicAuth.window
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_AUTH_RATE_LIMIT_BURST: publicAntiAbuse.publicAuth.burst
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_SEND_EMAIL_CODE_IDENTITY_RATE_LIMIT_REQUESTS: publicAntiAbuse.sendEmailCodeIdentity.requests
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_SEND_EMAIL_CODE_IDENTITY_RATE_LIMIT_WINDOW: publicAntiAbuse.sendEmailCodeIdentity.window
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_SEND_EMAIL_CODE_IDENTITY_RATE_LIMIT_BURST: publicAntiAbuse.sendEmailCodeIdentity.burst
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_CONFIRM_EMAIL_CODE_IDENTITY_RATE_LIMIT_REQUESTS: publicAntiAbuse.confirmEmailCodeIdentity.requests
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_CONFIRM_EMAIL_CODE_IDENTITY_RATE_LIMIT_WINDOW: publicAntiAbuse.confirmEmailCodeIdentity.window
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_CONFIRM_EMAIL_CODE_IDENTITY_RATE_LIMIT_BURST: publicAntiAbuse.confirmEmailCodeIdentity.burst
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_BROWSER_BOOTSTRAP_MAX_BODY_BYTES: publicAntiAbuse.browserBootstrap.maxBodyBytes
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_BROWSER_BOOTSTRAP_RATE_LIMIT_REQUESTS: publicAntiAbuse.browserBootstrap.requests
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_BROWSER_BOOTSTRAP_RATE_LIMIT_WINDOW: publicAntiAbuse.browserBootstrap.window
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_BROWSER_BOOTSTRAP_RATE_LIMIT_BURST: publicAntiAbuse.browserBootstrap.burst
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_BROWSER_ASSET_MAX_BODY_BYTES: publicAntiAbuse.browserAsset.maxBodyBytes
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_BROWSER_ASSET_RATE_LIMIT_REQUESTS: publicAntiAbuse.browserAsset.requests
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_BROWSER_ASSET_RATE_LIMIT_WINDOW: publicAntiAbuse.browserAsset.window
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_BROWSER_ASSET_RATE_LIMIT_BURST: publicAntiAbuse.browserAsset.burst
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_MISC_MAX_BODY_BYTES: publicAntiAbuse.publicMisc.maxBodyBytes
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_MISC_RATE_LIMIT_REQUESTS: publicAntiAbuse.publicMisc.requests
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_MISC_RATE_LIMIT_WINDOW: publicAntiAbuse.publicMisc.window
GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_MISC_RATE_LIMIT_BURST: publicAntiAbuse.publicMisc.burst
GATEWAY_AUTHENTICATED_GRPC_CONNECTION_TIMEOUT: authenticatedGrpc.connectionTimeout
GATEWAY_AUTHENTICATED_GRPC_MAX_CONNECTION_IDLE: authenticatedGrpc.maxConnectionIdle
GATEWAY_AUTHENTICATED_GRPC_MAX_CONNECTION_AGE: authenticatedGrpc.maxConnectionAge
GATEWAY_AUTHENTICATED_GRPC_FRESHNESS_WINDOW: authenticatedGrpc.freshnessWindow
GATEWAY_AUTHENTICATED_GRPC_MAX_MESSAGE_BYTES: authenticatedGrpc.maxMessageBytes
GATEWAY_AUTHENTICATED_DOWNSTREAM_TIMEOUT: authenticatedGrpc.downstreamTimeout
GATEWAY_AUTHENTICATED_GRPC_CORS_ALLOWED_ORIGINS: authenticatedGrpc.corsAllowedOrigins
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_IP_RATE_LIMIT_REQUESTS: authenticatedAntiAbuse.ip.requests
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_IP_RATE_LIMIT_WINDOW: authenticatedAntiAbuse.ip.window
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_IP_RATE_LIMIT_BURST: authenticatedAntiAbuse.ip.burst
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_RATE_LIMIT_REQUESTS: authenticatedAntiAbuse.session.requests
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_RATE_LIMIT_WINDOW: authenticatedAntiAbuse.session.window
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_RATE_LIMIT_BURST: authenticatedAntiAbuse.session.burst
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_USER_RATE_LIMIT_REQUESTS: authenticatedAntiAbuse.user.requests
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_USER_RATE_LIMIT_WINDOW: authenticatedAntiAbuse.user.window
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_USER_RATE_LIMIT_BURST: authenticatedAntiAbuse.user.burst
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_MESSAGE_CLASS_RATE_LIMIT_REQUESTS: authenticatedAntiAbuse.messageClass.requests
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_MESSAGE_CLASS_RATE_LIMIT_WINDOW: authenticatedAntiAbuse.messageClass.window
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_MESSAGE_CLASS_RATE_LIMIT_BURST: authenticatedAntiAbuse.messageClass.burst
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_LOOKUP_RATE_LIMIT_REQUESTS: authenticatedAntiAbuse.sessionLookup.requests
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_LOOKUP_RATE_LIMIT_WINDOW: authenticatedAntiAbuse.sessionLookup.window
GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_LOOKUP_RATE_LIMIT_BURST: authenticatedAntiAbuse.sessionLookup.burst
GATEWAY_SESSION_CACHE_MAX_ENTRIES: sessionCache.maxEntries
GATEWAY_SESSION_CACHE_TTL: sessionCache.ttl
GATEWAY_SESSION_CACHE_NEGATIVE_TTL: sessionCache.negativeTtl
GATEWAY_REDIS_MASTER_ADDR: redis.masterAddr
GATEWAY_REDIS_REPLICA_ADDRS: redis.replicaAddrs
GATEWAY_REDIS_DB: redis.db
GATEWAY_REDIS_OPERATION_TIMEOUT: redis.operationTimeout
GATEWAY_REPLAY_REDIS_KEY_PREFIX: replay.keyPrefix
GATEWAY_REPLAY_REDIS_RESERVE_TIMEOUT: replay.reserveTimeout
GATEWAY_REDIS_SESSION_EVENTS_STREAM: events.sessionEventsStream
GATEWAY_REDIS_CLIENT_EVENTS_STREAM: events.clientEventsStream
GATEWAY_REDIS_CLIENT_EVENTS_BRIDGE_ENABLED: events.clientEventsBridge
GATEWAY_REDIS_EVENTS_KEY_PREFIX: events.keyPrefix
GATEWAY_EVENT_HISTORY_MAX_EVENTS: events.historyMaxEvents
GATEWAY_EVENT_HISTORY_TTL: events.historyTtl
GATEWAY_BACKEND_PUSH_RECONNECT_BASE_BACKOFF: events.reconnectBaseBackoff
GATEWAY_BACKEND_PUSH_RECONNECT_MAX_BACKOFF: events.reconnectMaxBackoff
GATEWAY_REDIS_STREAM_RECONNECT_MAX_BACKOFF: events.streamReconnectMaxBackoff
GATEWAY_BACKEND_HTTP_URL: backend.httpUrl
GATEWAY_BACKEND_HTTP_TIMEOUT: backend.httpTimeout
GATEWAY_BACKEND_GATEWAY_CLIENT_ID: backend.gatewayClientId
GATEWAY_PUSH_STREAM_QUEUE_CAPACITY: push.streamQueueCapacity
GATEWAY_REDIS_ROUTE_TABLE_KEY: routes.snapshotKey
GATEWAY_REDIS_ROUTE_EVENTS_STREAM: routes.eventsStream
GATEWAY_ROUTES_RESYNC_INTERVAL: routes.resyncInterval
{{- end -}}

{{/* Topology spread of a component: dict "root" $ "svc" <values> "component" <name> */}}
{{- define "edge-gateway.topologySpread" -}}
{{- if .svc.topologySpreadConstraints -}}
{{ toYaml .svc.topologySpreadConstraints }}
{{- else if .root.Values.topologySpread.enabled -}}
{{- $ctx := . -}}
{{- range .root.Values.topologySpread.topologyKeys }}
- maxSkew: {{ $ctx.root.Values.topologySpread.maxSkew }}
  topologyKey: {{ . }}
  whenUnsatisfiable: {{ $ctx.root.Values.topologySpread.whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "edge-gateway.componentSelectorLabels" (dict "root" $ctx.root "component" $ctx.component) | nindent 6 }}
{{- end }}
{{- end -}}
{{- end -}}
