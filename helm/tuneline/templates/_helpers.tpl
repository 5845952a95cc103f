{{/* The services this chart deploys, in pipeline order. */}}
{{- define "tuneline.services" -}}
ingestion preprocessing training evaluation registry serving
{{- end }}

{{- define "tuneline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tuneline.fullname" -}}
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

{{/* Name of one service's resources: <fullname>-<service>. Args: (list $ "ingestion") */}}
{{- define "tuneline.serviceName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "tuneline.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tuneline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "tuneline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tuneline
{{- end }}

{{/* Selector labels of one service. Args: (list $ "ingestion") */}}
{{- define "tuneline.selectorLabels" -}}
{{- $root := index . 0 }}
app.kubernetes.io/name: {{ include "tuneline.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Image of one service. Args: (list $ "ingestion") */}}
{{- define "tuneline.image" -}}
{{- $root := index . 0 }}
{{- $svc := index $root.Values (index . 1) }}
{{- $repo := default (printf "%s/%s" $root.Values.image.repositoryPrefix (index . 1)) $svc.image.repository }}
{{- $tag := default (default $root.Chart.AppVersion $root.Values.image.tag) $svc.image.tag }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{- define "tuneline.objectStoreSecret" -}}
{{- default (printf "%s-object-store" (include "tuneline.fullname" .)) .Values.objectStore.existingSecret }}
{{- end }}

{{- define "tuneline.databaseSecret" -}}
{{- default (printf "%s-database" (include "tuneline.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{/* Kafka's security.protocol from the TLS and SASL switches. */}}
{{- define "tuneline.kafkaProtocol" -}}
{{- if and .Values.kafka.tls.enabled .Values.kafka.sasl.enabled }}SASL_SSL
{{- else if .Values.kafka.tls.enabled }}SSL
{{- else if .Values.kafka.sasl.enabled }}SASL_PLAINTEXT
{{- else }}PLAINTEXT
{{- end }}
{{- end }}

{{/* Environment from secrets, shared by every service and the training worker. */}}
{{- define "tuneline.secretEnv" -}}
- name: S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "tuneline.objectStoreSecret" . }}
      key: {{ .Values.objectStore.accessKeyKey }}
- name: S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "tuneline.objectStoreSecret" . }}
      key: {{ .Values.objectStore.secretKeyKey }}
{{- if .Values.kafka.sasl.enabled }}
{{- $secret := required "kafka.sasl.existingSecret is required with kafka.sasl.enabled" .Values.kafka.sasl.existingSecret }}
- name: KAFKA_SASL_USERNAME
  {{- if .Values.kafka.sasl.username }}
  value: {{ .Values.kafka.sasl.username | quote }}
  {{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.kafka.sasl.usernameKey }}
  {{- end }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.passwordKey }}
# Kubernetes expands $(VAR) from the variables above, so the password never sits in a ConfigMap.
- name: KAFKA_SASL_JAAS_CONFIG
  value: org.apache.kafka.common.security.scram.ScramLoginModule required username="$(KAFKA_SASL_USERNAME)" password="$(KAFKA_SASL_PASSWORD)";
{{- end }}
{{- end }}

{{/*
Where a pod may run, shared by every service, the training worker and serving's GPU pods:
runtimeClassName, priorityClassName, nodeSelector, tolerations and affinity of a values block
(keys it lacks are left out). Args: the block, e.g. .Values.training.worker
*/}}
{{- define "tuneline.podScheduling" -}}
{{- with .runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A container's resources with GPUs added as a limit of the extended resource (the device plugin
schedules extended resources by their limit). Args: (list resources gpuResourceName gpus)
*/}}
{{- define "tuneline.gpuResources" -}}
{{- /* No resources at all (a values file's empty "resources:" deletes the defaults) is none. */}}
{{- $res := deepCopy (default dict (index . 0)) }}
{{- $_ := set $res "limits" (merge (dict (index . 1) (index . 2)) (default dict $res.limits)) }}
{{- toYaml $res }}
{{- end }}
