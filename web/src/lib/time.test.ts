import {
  dayStartUtc,
  dueLabel,
  formatDate,
  formatDateTime,
  isLocalDate,
  isValidTimeZone,
  localInputToUtc,
  utcToLocalInput,
} from "./time";

const BERLIN = "Europe/Berlin";
const NEW_YORK = "America/New_York";

describe("localInputToUtc", () => {
  it.each([
    // Winter: Berlin is UTC+1, New York UTC-5.
    ["2026-01-15T09:00", BERLIN, "2026-01-15T08:00:00.000Z"],
    ["2026-01-15T09:00", NEW_YORK, "2026-01-15T14:00:00.000Z"],
    // Between the US change (8 March) and the EU change (29 March): New York already on
    // daylight time (UTC-4), Berlin still on standard time (UTC+1).
    ["2026-03-20T09:00", NEW_YORK, "2026-03-20T13:00:00.000Z"],
    ["2026-03-20T09:00", BERLIN, "2026-03-20T08:00:00.000Z"],
    // Summer: Berlin UTC+2, New York UTC-4.
    ["2026-07-15T09:00", BERLIN, "2026-07-15T07:00:00.000Z"],
    ["2026-07-15T09:00", NEW_YORK, "2026-07-15T13:00:00.000Z"],
    // The hours on either side of Berlin's spring-forward at 02:00 local (01:00 UTC).
    ["2026-03-29T01:59", BERLIN, "2026-03-29T00:59:00.000Z"],
    ["2026-03-29T03:00", BERLIN, "2026-03-29T01:00:00.000Z"],
    // Seconds and milliseconds, when the input carries them.
    ["2026-07-15T09:00:30.5", BERLIN, "2026-07-15T07:00:30.500Z"],
    ["2026-07-15T09:00", "UTC", "2026-07-15T09:00:00.000Z"],
  ])("reads %s in %s as %s", (local, zone, utc) => {
    expect(localInputToUtc(local, zone)).toBe(utc);
  });

  it("moves a time skipped by spring-forward forward by the gap", () => {
    expect(localInputToUtc("2026-03-29T02:30", BERLIN)).toBe("2026-03-29T01:30:00.000Z");
    expect(localInputToUtc("2026-03-08T02:30", NEW_YORK)).toBe("2026-03-08T07:30:00.000Z");
  });

  it("reads a time repeated by fall-back as the earlier instant", () => {
    // 02:30 happens at 00:30 UTC (summer time) and again at 01:30 UTC in Berlin.
    expect(localInputToUtc("2026-10-25T02:30", BERLIN)).toBe("2026-10-25T00:30:00.000Z");
    // 01:30 happens at 05:30 UTC (daylight time) and again at 06:30 UTC in New York.
    expect(localInputToUtc("2026-11-01T01:30", NEW_YORK)).toBe("2026-11-01T05:30:00.000Z");
  });

  it("refuses an unknown zone", () => {
    expect(() => localInputToUtc("2026-07-15T09:00", "Mars/Olympus_Mons")).toThrow(RangeError);
  });

  it.each(["", "2026-07-15", "2026-07-15 09:00", "2026-02-30T09:00", "2026-07-15T24:00"])(
    "refuses %j",
    (value) => {
      expect(() => localInputToUtc(value, BERLIN)).toThrow(RangeError);
    },
  );
});

describe("utcToLocalInput", () => {
  it.each([
    ["2026-01-15T08:00:00.000Z", BERLIN, "2026-01-15T09:00"],
    ["2026-07-15T07:00:00Z", BERLIN, "2026-07-15T09:00"],
    ["2026-03-20T13:00:00.000Z", NEW_YORK, "2026-03-20T09:00"],
    ["2026-01-15T14:00:00.000Z", NEW_YORK, "2026-01-15T09:00"],
    // 23:30 UTC is already the next day in Berlin and still the same day in New York.
    ["2026-07-15T23:30:00.000Z", BERLIN, "2026-07-16T01:30"],
    ["2026-07-15T23:30:00.000Z", NEW_YORK, "2026-07-15T19:30"],
  ])("shows %s in %s as %s", (utc, zone, local) => {
    expect(utcToLocalInput(utc, zone)).toBe(local);
  });

  it.each([
    [BERLIN, "2026-03-26T00:00:00.000Z", 0],
    [BERLIN, "2026-10-22T00:00:00.000Z", 1],
    [NEW_YORK, "2026-03-05T00:00:00.000Z", 0],
    [NEW_YORK, "2026-10-29T00:00:00.000Z", 1],
  ])("round-trips every hour of a week in %s from %s", (zone, start, repeatedHours) => {
    let cameBackEarly = 0;
    for (let hour = 0; hour < 24 * 7; hour += 1) {
      const instant = Date.parse(start) + hour * 3_600_000;
      const local = utcToLocalInput(new Date(instant).toISOString(), zone);
      const back = Date.parse(localInputToUtc(local, zone));
      expect(utcToLocalInput(new Date(back).toISOString(), zone)).toBe(local);
      // The second pass through a repeated wall-clock hour reads as its first pass.
      if (back !== instant) {
        expect(back).toBe(instant - 3_600_000);
        cameBackEarly += 1;
      }
    }
    expect(cameBackEarly).toBe(repeatedHours);
  });
});

describe("dayStartUtc", () => {
  it("is midnight in the zone, as UTC", () => {
    expect(dayStartUtc("2026-07-15", BERLIN)).toBe("2026-07-14T22:00:00.000Z");
    expect(dayStartUtc("2026-01-15", BERLIN)).toBe("2026-01-14T23:00:00.000Z");
    expect(dayStartUtc("2026-07-15", NEW_YORK)).toBe("2026-07-15T04:00:00.000Z");
  });

  it("shifts by whole calendar days, even across a DST change", () => {
    // The day after 28 March in Berlin starts at UTC+1, the day after that at UTC+2.
    expect(dayStartUtc("2026-03-28", BERLIN, 1)).toBe("2026-03-28T23:00:00.000Z");
    expect(dayStartUtc("2026-03-29", BERLIN, 1)).toBe("2026-03-29T22:00:00.000Z");
    expect(dayStartUtc("2026-12-31", "UTC", 1)).toBe("2027-01-01T00:00:00.000Z");
  });

  it("refuses what is not a calendar day", () => {
    expect(() => dayStartUtc("2026-02-29", BERLIN)).toThrow(RangeError);
    expect(() => dayStartUtc("tomorrow", BERLIN)).toThrow(RangeError);
  });
});

describe("isLocalDate and isValidTimeZone", () => {
  it("accept real days and zones only", () => {
    expect(isLocalDate("2028-02-29")).toBe(true);
    expect(isLocalDate("2026-02-29")).toBe(false);
    expect(isLocalDate("2026-7-15")).toBe(false);
    expect(isValidTimeZone(BERLIN)).toBe(true);
    expect(isValidTimeZone("Mars/Olympus_Mons")).toBe(false);
  });
});

describe("formatDateTime", () => {
  it("shows the instant in the zone", () => {
    const instant = "2026-07-15T23:30:00.000Z";
    expect(formatDateTime(instant, BERLIN, "en-GB")).toBe("16 Jul 2026, 01:30");
    expect(formatDateTime(instant, NEW_YORK, "en-GB")).toBe("15 Jul 2026, 19:30");
    expect(formatDate(instant, BERLIN, "en-GB")).toBe("16 Jul 2026");
    expect(formatDate(instant, NEW_YORK, "en-GB")).toBe("15 Jul 2026");
  });
});

describe("dueLabel", () => {
  // 10:00 in Berlin, 04:00 in New York.
  const now = new Date("2026-07-15T08:00:00.000Z");

  it.each([
    ["2026-07-15T15:00:00.000Z", BERLIN, "Due today at 17:00", "soon"],
    ["2026-07-16T07:00:00.000Z", BERLIN, "Due tomorrow at 09:00", "soon"],
    ["2026-07-18T07:00:00.000Z", BERLIN, "Due in 3 days", "later"],
    ["2026-08-01T07:00:00.000Z", BERLIN, "Due 1 Aug 2026", "later"],
    ["2026-07-15T07:00:00.000Z", BERLIN, "Overdue since 09:00", "overdue"],
    ["2026-07-14T07:00:00.000Z", BERLIN, "Overdue since yesterday", "overdue"],
    ["2026-07-12T07:00:00.000Z", BERLIN, "Overdue by 3 days", "overdue"],
  ])("describes %s in %s as %j", (due, zone, text, tone) => {
    expect(dueLabel(due, now, zone, "en-GB")).toEqual({ text, tone });
  });

  it("counts days in the user's zone, not the browser's", () => {
    // 23:30 UTC on the 15th is tomorrow in Berlin but still today in New York.
    const due = "2026-07-15T23:30:00.000Z";
    expect(dueLabel(due, now, BERLIN, "en-GB").text).toBe("Due tomorrow at 01:30");
    expect(dueLabel(due, now, NEW_YORK, "en-GB").text).toBe("Due today at 19:30");
  });
});
