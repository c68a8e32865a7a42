/** Names for the gateway's schemas, so pages never spell out `components["schemas"][...]`. */
import type { components } from "./generated/schema";

type Schemas = components["schemas"];

export type Task = Schemas["Task"];
export type TaskCreate = Schemas["TaskCreate"];
export type TaskPatch = Schemas["TaskPatch"];
export type TaskPage = Schemas["TaskPage"];
export type Profile = Schemas["Profile"];
export type ProfileUpdate = Schemas["ProfileUpdate"];
export type ProfilePage = Schemas["ProfilePage"];
export type User = Schemas["User"];
export type UserSummary = Schemas["UserSummary"];
export type UserUpdate = Schemas["UserUpdate"];
export type Notification = Schemas["Notification"];
export type NotificationPage = Schemas["NotificationPage"];
export type Attachment = Schemas["Attachment"];
export type Summary = Schemas["Summary"];
export type EndpointList = Schemas["EndpointList"];
export type EndpointStats = Schemas["EndpointStats"];
export type Timeseries = Schemas["Timeseries"];
export type Point = Schemas["Point"];
export type Status = Schemas["Status"];
export type Priority = Schemas["Priority"];
export type SortOrder = Schemas["SortOrder"];
export type Scope = Schemas["Scope"];
export type Role = Schemas["Role"];
export type Window = Schemas["Window"];
export type Metric = Schemas["Metric"];
export type Interval = Schemas["Interval"];
export type Problem = Schemas["Problem"];
export type Tokens = Schemas["Tokens"];
