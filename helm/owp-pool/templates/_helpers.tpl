{{- define "owp.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "owp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "owp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "owp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "owp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "owp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "owp.secretName" -}}
{{- default (include "owp.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{- define "owp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "owp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "owp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Restricted pod and container security settings shared by the Deployment and the Job. */}}
{{- define "owp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "owp.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Environment from the Secret: required keys, then optional ones. */}}
{{- define "owp.secretEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "owp.secretName" . }}
      key: DATABASE_URL
{{- end -}}

{{/* The most replicas that may run at once: replicaCount, or autoscaling.maxReplicas. */}}
{{- define "owp.maxReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- int .Values.autoscaling.maxReplicas -}}
{{- else -}}
{{- int .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/* Each replica's request pool: config.dbMaxConnections, or (0) the largest that fits the
     connection budget at the most replicas plus a surge, at most 20 (20 behind PgBouncer,
     whose own pool is what PostgreSQL sees). */}}
{{- define "owp.dbPool" -}}
{{- $pool := int .Values.config.dbMaxConnections -}}
{{- if eq $pool 0 -}}
{{- if .Values.pgbouncer.enabled -}}
{{- $pool = 20 -}}
{{- else -}}
{{- $replicas := int (include "owp.maxReplicas" .) -}}
{{- $budget := sub (int .Values.database.maxConnections) (int .Values.database.reservedConnections) -}}
{{- $pool = min 20 (sub (div (sub $budget 1) (add $replicas 1)) 2) -}}
{{- end -}}
{{- end -}}
{{- $pool -}}
{{- end -}}

{{/* Fails the render when the replicas could open more connections than the database allows. */}}
{{- define "owp.connectionBudget" -}}
{{- $replicas := int (include "owp.maxReplicas" .) -}}
{{- $pool := int (include "owp.dbPool" .) -}}
{{- /* per replica: its request pool, the leader's lock session and the LISTEN session */ -}}
{{- $needed := add (mul (add $replicas 1) (add $pool 2)) 1 -}}
{{- $budget := sub (int .Values.database.maxConnections) (int .Values.database.reservedConnections) -}}
{{- if .Values.pgbouncer.enabled -}}
{{- $clients := mul (add $replicas 1) $pool -}}
{{- if gt (int $clients) (int .Values.pgbouncer.maxClientConnections) -}}
{{- fail (printf "PgBouncer's client limit exceeded: (%d replicas + 1 surge) x %d pooled = %d clients, but pgbouncer.maxClientConnections = %d" $replicas $pool (int $clients) (int .Values.pgbouncer.maxClientConnections)) -}}
{{- end -}}
{{- $needed = add (mul (int .Values.pgbouncer.replicaCount) (int .Values.pgbouncer.poolSize)) (mul (add $replicas 1) 2) 1 -}}
{{- if gt (int $needed) (int $budget) -}}
{{- fail (printf "connection budget exceeded: %d PgBouncer x %d pooled + (%d replicas + 1 surge) x 2 direct (leader lock, LISTEN) + 1 migration = %d connections, but database.maxConnections - reservedConnections = %d; lower pgbouncer.poolSize or raise max_connections" (int .Values.pgbouncer.replicaCount) (int .Values.pgbouncer.poolSize) $replicas (int $needed) (int $budget)) -}}
{{- end -}}
{{- else -}}
{{- if lt $pool 2 -}}
{{- fail (printf "connection budget too small: %d replicas (+ 1 surge) leave fewer than 2 pooled connections each within database.maxConnections - reservedConnections = %d; raise max_connections, turn on pgbouncer, or lower the replica count" $replicas (int $budget)) -}}
{{- end -}}
{{- if gt (int $needed) (int $budget) -}}
{{- fail (printf "connection budget exceeded: (%d replicas + 1 surge) x (%d pooled + 1 leader lock + 1 LISTEN) + 1 migration = %d connections, but database.maxConnections - reservedConnections = %d; lower config.dbMaxConnections or the replica count, raise max_connections, or turn on pgbouncer" $replicas $pool (int $needed) (int $budget)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
