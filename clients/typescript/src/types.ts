// Friendly names for the generated schemas (src/schema.d.ts is generated: do not edit it).
import type { components } from "./schema.js";

type Schemas = components["schemas"];
export type Lease = Schemas["Lease"];
export type WorkResponse = Schemas["WorkResponse"];
export type RegisterRequest = Schemas["RegisterRequest"];
export type RegisterResponse = Schemas["RegisterResponse"];
export type HeartbeatResponse = Schemas["HeartbeatResponse"];
export type StatusRequest = Schemas["StatusRequest"];
export type StatusResponse = Schemas["StatusResponse"];
export type ReportedStatus = Schemas["ReportedStatus"];
export type TaskStatus = Schemas["TaskStatus"];
export type WorkerStatus = Schemas["WorkerStatus"];
export type ArtifactIn = Schemas["ArtifactIn"];
export type OfferView = Schemas["OfferView"];
export type AcceptResponse = Schemas["AcceptResponse"];
export type RejectReason = Schemas["RejectReasonName"];
export type TaskRequest = Schemas["TaskRequest"];
export type TaskView = Schemas["TaskView"];
export type TaskDetail = Schemas["TaskDetail"];
export type WorkerView = Schemas["WorkerView"];
export type Reputation = Schemas["Reputation"];
export type RepoRequest = Schemas["RepoRequest"];
export type StateResponse = Schemas["StateResponse"];
export type AuditEvent = Schemas["AuditEvent"];
export type ServiceInfo = Schemas["ServiceInfo"];
export type TrustTier = Schemas["TrustTier"];
export type ErrorBodySchema = Schemas["ErrorBody"];
