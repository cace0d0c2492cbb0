{{/* Chart name (app.kubernetes.io/name). */}}
{{- define "chat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name, the prefix of every object name. Cut to 40 chars (not the usual 63)
so that suffixed names such as "<fullname>-postgresql" plus the StatefulSet revision-hash label
stay within the 63-char DNS label limit.
*/}}
{{- define "chat.fullname" -}}
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

{{/* Chart name and version (helm.sh/chart). */}}
{{- define "chat.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels. Call with (dict "ctx" $ "component" "server").
*/}}
{{- define "chat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chat.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Standard labels for every object. Call with (dict "ctx" $ "component" "server").
*/}}
{{- define "chat.labels" -}}
helm.sh/chart: {{ include "chat.chart" .ctx }}
{{ include "chat.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Values.image.tag | default .ctx.Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: {{ .ctx.Values.partOf }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Chat server image reference. */}}
{{- define "chat.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "chat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "chat.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Name of the headless Service Envoy resolves (STRICT_DNS) to every ready chat pod. */}}
{{- define "chat.headlessName" -}}
{{- printf "%s-headless" (include "chat.fullname" .) -}}
{{- end -}}

{{/* Label that lets a pod reach the chat gRPC port through the NetworkPolicy. */}}
{{- define "chat.clientLabel" -}}
{{- printf "%s-client" (include "chat.fullname" .) -}}
{{- end -}}

{{/* ---- Database / Redis connection ---- */}}
{{- define "chat.db.host" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s-postgresql" (include "chat.fullname" .) -}}
{{- else -}}
{{- .Values.externalDatabase.host -}}
{{- end -}}
{{- end -}}

{{- define "chat.db.port" -}}
{{- if .Values.postgresql.enabled -}}5432{{- else -}}{{ .Values.externalDatabase.port }}{{- end -}}
{{- end -}}

{{- define "chat.db.database" -}}
{{- if .Values.postgresql.enabled -}}{{ .Values.postgresql.auth.database }}{{- else -}}{{ .Values.externalDatabase.database }}{{- end -}}
{{- end -}}

{{- define "chat.db.username" -}}
{{- if .Values.postgresql.enabled -}}{{ .Values.postgresql.auth.username }}{{- else -}}{{ .Values.externalDatabase.username }}{{- end -}}
{{- end -}}

{{/* Secret and key holding DB_PASSWORD for the chat pods. */}}
{{- define "chat.db.secretName" -}}
{{- if and (not .Values.postgresql.enabled) .Values.externalDatabase.existingSecret -}}
{{- .Values.externalDatabase.existingSecret -}}
{{- else -}}
{{- include "chat.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "chat.db.secretKey" -}}
{{- if and (not .Values.postgresql.enabled) .Values.externalDatabase.existingSecret -}}
{{- .Values.externalDatabase.existingSecretPasswordKey -}}
{{- else -}}
db-password
{{- end -}}
{{- end -}}

{{- define "chat.redis.host" -}}
{{- if .Values.redis.enabled -}}
{{- printf "%s-redis" (include "chat.fullname" .) -}}
{{- else -}}
{{- .Values.externalRedis.host -}}
{{- end -}}
{{- end -}}

{{- define "chat.redis.port" -}}
{{- if .Values.redis.enabled -}}6379{{- else -}}{{ .Values.externalRedis.port }}{{- end -}}
{{- end -}}

{{/* "true" when Redis needs a password. */}}
{{- define "chat.redis.auth" -}}
{{- if .Values.redis.enabled -}}
{{- ternary "true" "" .Values.redis.auth.enabled -}}
{{- else if or .Values.externalRedis.password .Values.externalRedis.existingSecret -}}
true
{{- end -}}
{{- end -}}

{{- define "chat.redis.secretName" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret -}}
{{- .Values.externalRedis.existingSecret -}}
{{- else -}}
{{- include "chat.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "chat.redis.secretKey" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret -}}
{{- .Values.externalRedis.existingSecretPasswordKey -}}
{{- else -}}
redis-password
{{- end -}}
{{- end -}}

{{/* ---- JWT ---- */}}
{{- define "chat.jwt.secretName" -}}
{{- default (include "chat.fullname" .) .Values.jwt.existingSecret -}}
{{- end -}}

{{- define "chat.jwt.secretKey" -}}
{{- if .Values.jwt.existingSecret -}}
{{- .Values.jwt.existingSecretKeys.secret -}}
{{- else if .Values.jwt.secret -}}
jwt-secret
{{- end -}}
{{- end -}}

{{- define "chat.jwt.publicKeyKey" -}}
{{- if .Values.jwt.existingSecret -}}
{{- .Values.jwt.existingSecretKeys.publicKey -}}
{{- else if .Values.jwt.publicKey -}}
jwt-public-key
{{- end -}}
{{- end -}}

{{/*
A password kept across upgrades: the explicit value, else the one already stored in the
release Secret (lookup; empty during `helm template`), else a new random one.
Call with (dict "ctx" $ "key" "db-password" "value" .Values.postgresql.auth.password).
*/}}
{{- define "chat.persistentPassword" -}}
{{- if .value -}}
{{- .value -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace (include "chat.fullname" .ctx) -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Non-secret environment of the chat server, as a YAML map. Used by the ConfigMap (chat pods) and
inlined into the migration hook Job (the ConfigMap does not exist yet at pre-install).
*/}}
{{- define "chat.configEnv" -}}
GRPC_PORT: {{ .Values.ports.grpc | quote }}
METRICS_PORT: {{ .Values.ports.metrics | quote }}
DB_HOST: {{ include "chat.db.host" . | quote }}
DB_PORT: {{ include "chat.db.port" . | quote }}
{{- if and (not .Values.postgresql.enabled) .Values.externalDatabase.replicaHost }}
DB_REPLICA_HOST: {{ .Values.externalDatabase.replicaHost | quote }}
DB_REPLICA_PORT: {{ .Values.externalDatabase.replicaPort | quote }}
{{- end }}
DB_DATABASE: {{ include "chat.db.database" . | quote }}
DB_USERNAME: {{ include "chat.db.username" . | quote }}
DB_POOL_MAX: {{ .Values.config.dbPoolMax | quote }}
REDIS_HOST: {{ include "chat.redis.host" . | quote }}
REDIS_PORT: {{ include "chat.redis.port" . | quote }}
{{- if not .Values.redis.enabled }}
{{- with .Values.externalRedis }}
REDIS_MODE: {{ .mode | quote }}
{{- if eq .mode "sentinel" }}
REDIS_SENTINELS: {{ join "," .sentinel.nodes | quote }}
REDIS_SENTINEL_MASTER: {{ .sentinel.master | quote }}
{{- else if eq .mode "cluster" }}
REDIS_CLUSTER_NODES: {{ join "," .cluster.nodes | quote }}
STREAM_LANES: {{ .cluster.lanes | quote }}
{{- end }}
{{- end }}
{{- end }}
JWT_ALGORITHMS: {{ .Values.jwt.algorithms | quote }}
JWT_ISSUER: {{ .Values.jwt.issuer | quote }}
JWT_AUDIENCE: {{ .Values.jwt.audience | quote }}
LOG_LEVEL: {{ .Values.config.logLevel | quote }}
LOG_FORMAT: {{ .Values.config.logFormat | quote }}
MIGRATE_ON_START: {{ or .Values.postgresql.enabled .Values.migrations.migrateOnStart | toString | quote }}
SHUTDOWN_GRACE_SECONDS: {{ .Values.config.shutdownGraceSeconds | quote }}
{{- with .Values.config.rateLimits }}
{{- with .edits }}
RATE_LIMIT_EDITS: {{ . | quote }}
{{- end }}
{{- with .deletes }}
RATE_LIMIT_DELETES: {{ . | quote }}
{{- end }}
{{- with .reactions }}
RATE_LIMIT_REACTIONS: {{ . | quote }}
{{- end }}
{{- with .markRead }}
RATE_LIMIT_MARK_READ: {{ . | quote }}
{{- end }}
{{- with .reads }}
RATE_LIMIT_READS: {{ . | quote }}
{{- end }}
{{- end }}
EXPOSE_MEMBER_EMAILS: {{ .Values.config.exposeMemberEmails | toString | quote }}
OTEL_SERVICE_NAME: {{ .Values.config.otel.serviceName | default (include "chat.fullname" .) | quote }}
{{- with .Values.config.otel.endpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
The restricted container securityContext (Pod Security Standard "restricted").
Call with (dict "writableRoot" false); only Tilt's live_update needs a writable root.
*/}}
{{- define "chat.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ not .writableRoot }}
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod securityContext. Call with the uid/gid to run as: (dict "uid" 10001). */}}
{{- define "chat.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Whether the migration hook Job is rendered (see values.yaml "migrations"). */}}
{{- define "chat.migrationJob" -}}
{{- if and (not .Values.postgresql.enabled) (not .Values.migrations.migrateOnStart) -}}
true
{{- end -}}
{{- end -}}

{{/* Name of the Secret mounted into Envoy for downstream TLS ("" = TLS off). */}}
{{- define "chat.envoy.tlsSecret" -}}
{{- if .Values.envoy.tls.enabled -}}
{{- if .Values.envoy.tls.existingSecret -}}
{{- .Values.envoy.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-envoy-tls" (include "chat.fullname" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Fail early on contradictory values. */}}
{{- define "chat.validateValues" -}}
{{- $errors := list -}}
{{- if and (not .Values.postgresql.enabled) (not .Values.externalDatabase.host) -}}
{{- $errors = append $errors "postgresql.enabled=false needs externalDatabase.host" -}}
{{- end -}}
{{- if and (not .Values.postgresql.enabled) (not .Values.externalDatabase.password) (not .Values.externalDatabase.existingSecret) -}}
{{- $errors = append $errors "postgresql.enabled=false needs externalDatabase.password or externalDatabase.existingSecret" -}}
{{- end -}}
{{- $xr := .Values.externalRedis -}}
{{- if and (not .Values.redis.enabled) (eq $xr.mode "standalone") (not $xr.host) -}}
{{- $errors = append $errors "redis.enabled=false needs externalRedis.host" -}}
{{- end -}}
{{- if and (not .Values.redis.enabled) (eq $xr.mode "sentinel") (not $xr.sentinel.nodes) -}}
{{- $errors = append $errors "externalRedis.mode=sentinel needs externalRedis.sentinel.nodes" -}}
{{- end -}}
{{- if and (not .Values.redis.enabled) (eq $xr.mode "cluster") (not $xr.cluster.nodes) -}}
{{- $errors = append $errors "externalRedis.mode=cluster needs externalRedis.cluster.nodes" -}}
{{- end -}}
{{- if and .Values.envoy.tls.enabled (not .Values.envoy.tls.existingSecret) (not .Values.envoy.tls.certManager.enabled) -}}
{{- $errors = append $errors "envoy.tls.enabled needs envoy.tls.existingSecret or envoy.tls.certManager.enabled" -}}
{{- end -}}
{{- if and .Values.envoy.tls.enabled .Values.envoy.tls.certManager.enabled (not .Values.envoy.tls.existingSecret) (or (not .Values.envoy.tls.certManager.issuerRef.name) (not .Values.envoy.tls.certManager.dnsNames)) -}}
{{- $errors = append $errors "envoy.tls.certManager needs issuerRef.name and dnsNames" -}}
{{- end -}}
{{- if and .Values.terminationGracePeriodSeconds (le (int .Values.terminationGracePeriodSeconds) (add (int .Values.preStopSleepSeconds) (int .Values.config.shutdownGraceSeconds) | int)) -}}
{{- $errors = append $errors "terminationGracePeriodSeconds must exceed preStopSleepSeconds + config.shutdownGraceSeconds" -}}
{{- end -}}
{{- $gw := .Values.backendApi.gateway -}}
{{- if and $gw.enabled (not .Values.envoy.enabled) -}}
{{- $errors = append $errors "backendApi.gateway.enabled needs envoy.enabled (the listener is on the Envoy pods)" -}}
{{- end -}}
{{- if and $gw.enabled (has (int $gw.port) (list (int .Values.envoy.service.httpPort) (int .Values.envoy.statsPort) (int .Values.envoy.adminPort))) -}}
{{- $errors = append $errors (printf "backendApi.gateway.port %v is taken by another Envoy port (envoy.service.httpPort, envoy.statsPort, envoy.adminPort)" $gw.port) -}}
{{- end -}}
{{- $hs := false -}}
{{- $asym := false -}}
{{- range (splitList "," .Values.jwt.algorithms) -}}
{{- if hasPrefix "HS" (trim .) -}}{{- $hs = true -}}{{- else if (trim .) -}}{{- $asym = true -}}{{- end -}}
{{- end -}}
{{- if and (not .Values.jwt.secret) (not .Values.jwt.publicKey) (not .Values.jwt.existingSecret) -}}
{{- $errors = append $errors "no JWT key: set jwt.secret (the JWT_SECRET your Laravel app signs tokens with, e.g. --set-string jwt.secret=$JWT_SECRET), jwt.publicKey (RS256, Passport's oauth-public.key, with jwt.algorithms=RS256) or jwt.existingSecret (a Secret holding them); without one the chat pods cannot verify any token and refuse to start" -}}
{{- else -}}
{{- if and $hs (not (include "chat.jwt.secretKey" .)) -}}
{{- $errors = append $errors (printf "jwt.algorithms=%s includes an HS algorithm: set jwt.secret (or jwt.existingSecretKeys.secret with jwt.existingSecret)" .Values.jwt.algorithms) -}}
{{- end -}}
{{- if and $asym (not (include "chat.jwt.publicKeyKey" .)) -}}
{{- $errors = append $errors (printf "jwt.algorithms=%s includes an RS/ES algorithm: set jwt.publicKey (or jwt.existingSecretKeys.publicKey with jwt.existingSecret)" .Values.jwt.algorithms) -}}
{{- end -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\nVALUES VALIDATION:\n  - %s" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}
