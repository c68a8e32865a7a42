/**
 * Times in the user's time zone.
 *
 * The API speaks RFC 3339 in UTC; people think in their own zone (the profile's IANA
 * `timezone`). These helpers convert between the two with @date-fns/tz, so the result
 * never depends on the browser's zone.
 */
import { tz, tzOffset } from "@date-fns/tz";
import { differenceInCalendarDays, format } from "date-fns";

/** What an `<input type="datetime-local">` holds: wall-clock time with no zone. */
const DATETIME_LOCAL_FORMAT = "yyyy-MM-dd'T'HH:mm";

const LOCAL_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$/;
const LOCAL_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

function isCalendarDate(year: number, month: number, day: number): boolean {
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth;
}

/** Whether `value` is a real calendar day written as an `<input type="date">` holds it. */
export function isLocalDate(value: string): boolean {
  const match = LOCAL_DATE.exec(value);
  return match !== null && isCalendarDate(Number(match[1]), Number(match[2]), Number(match[3]));
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/**
 * The instant at which the wall clock of `timeZone` shows `wallClock` (a time read as if it
 * were UTC), resolved as Temporal's "compatible" disambiguation does: a time repeated when
 * clocks fall back is its earlier instant; a time skipped when they spring forward moves
 * forward by the gap.
 */
function instantOfWallClock(wallClock: number, timeZone: string): number {
  // Real zones change offset at most once within a day, so the offsets a day either side
  // are the only candidates.
  const offsetBefore = tzOffset(timeZone, new Date(wallClock - DAY_MS));
  const offsetAfter = tzOffset(timeZone, new Date(wallClock + DAY_MS));
  if (Number.isNaN(offsetBefore) || Number.isNaN(offsetAfter)) {
    throw new RangeError(`Unknown time zone: ${JSON.stringify(timeZone)}`);
  }
  const matching = [offsetBefore, offsetAfter]
    .map((offset) => wallClock - offset * MINUTE_MS)
    .filter((instant) => wallClock - tzOffset(timeZone, new Date(instant)) * MINUTE_MS === instant);
  if (matching.length > 0) {
    return Math.min(...matching);
  }
  return wallClock - offsetBefore * MINUTE_MS;
}

/** The browser's own zone: a fallback while the profile's zone is not known yet. */
export function browserTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** Whether `timeZone` is an IANA name (or offset) this browser can compute with. */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone });
    return true;
  } catch {
    return false;
  }
}

/**
 * A datetime-local value ("2026-03-29T09:30"), read as wall-clock time in `timeZone`,
 * as an RFC 3339 UTC timestamp ("2026-03-29T07:30:00.000Z").
 *
 * A time skipped by a DST change (02:30 when clocks jump from 02:00 to 03:00) moves
 * forward by the gap; a repeated time (02:30 when clocks fall back) is the earlier instant.
 * Throws RangeError when `value` is not a datetime-local value or the zone is unknown.
 */
export function localInputToUtc(value: string, timeZone: string): string {
  const match = LOCAL_DATE_TIME.exec(value);
  if (match === null) {
    throw new RangeError(`Not a local date and time: ${JSON.stringify(value)}`);
  }
  const [year = 0, month = 0, day = 0, hours = 0, minutes = 0] = match.slice(1, 6).map(Number);
  const seconds = Number(match[6] ?? "0");
  const milliseconds = Number((match[7] ?? "0").padEnd(3, "0"));
  if (!isCalendarDate(year, month, day) || hours > 23 || minutes > 59 || seconds > 59) {
    throw new RangeError(`Not a local date and time: ${JSON.stringify(value)}`);
  }
  const wallClock = Date.UTC(year, month - 1, day, hours, minutes, seconds, milliseconds);
  return new Date(instantOfWallClock(wallClock, timeZone)).toISOString();
}

/** An RFC 3339 timestamp as the datetime-local value showing it in `timeZone`. */
export function utcToLocalInput(iso: string, timeZone: string): string {
  return format(new Date(iso), DATETIME_LOCAL_FORMAT, { in: tz(timeZone) });
}

/**
 * The instant a calendar day ("2026-03-29", as an `<input type="date">` holds it) starts
 * in `timeZone`, shifted by `offsetDays` whole days, as an RFC 3339 UTC timestamp.
 * Throws RangeError when `day` is not a date.
 */
export function dayStartUtc(day: string, timeZone: string, offsetDays = 0): string {
  if (!isLocalDate(day)) {
    throw new RangeError(`Not a date: ${JSON.stringify(day)}`);
  }
  const [year = 0, month = 0, date = 0] = day.split("-").map(Number);
  const wallClock = Date.UTC(year, month - 1, date + offsetDays);
  return new Date(instantOfWallClock(wallClock, timeZone)).toISOString();
}

/** "28 Nov 2026, 10:42" style: date and time, as read in `timeZone`. */
export function formatDateTime(iso: string, timeZone: string, locale?: string): string {
  return new Intl.DateTimeFormat(locale, {
    dateStyle: "medium",
    timeStyle: "short",
    timeZone,
  }).format(new Date(iso));
}

function formatTime(date: Date, timeZone: string, locale?: string): string {
  return new Intl.DateTimeFormat(locale, { timeStyle: "short", timeZone }).format(date);
}

/** "28 Nov 2026" style: the calendar day of the instant in `timeZone`. */
export function formatDate(iso: string, timeZone: string, locale?: string): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone }).format(new Date(iso));
}

export type DueTone = "overdue" | "soon" | "later";

export interface DueLabel {
  text: string;
  tone: DueTone;
}

/**
 * A short, relative description of a due date ("Due tomorrow at 09:00", "Overdue by 3 days"),
 * counting calendar days in `timeZone` so "today" is the user's today.
 */
export function dueLabel(dueIso: string, now: Date, timeZone: string, locale?: string): DueLabel {
  const due = new Date(dueIso);
  const days = differenceInCalendarDays(due, now, { in: tz(timeZone) });
  if (due.getTime() <= now.getTime()) {
    if (days === 0) {
      return { text: `Overdue since ${formatTime(due, timeZone, locale)}`, tone: "overdue" };
    }
    if (days === -1) {
      return { text: "Overdue since yesterday", tone: "overdue" };
    }
    return { text: `Overdue by ${-days} days`, tone: "overdue" };
  }
  if (days === 0) {
    return { text: `Due today at ${formatTime(due, timeZone, locale)}`, tone: "soon" };
  }
  if (days === 1) {
    return { text: `Due tomorrow at ${formatTime(due, timeZone, locale)}`, tone: "soon" };
  }
  if (days < 7) {
    return { text: `Due in ${days} days`, tone: "later" };
  }
  return { text: `Due ${formatDate(dueIso, timeZone, locale)}`, tone: "later" };
}
