import { changesBetween, draftOf, sameEditedFields } from "./taskDraft";
import { makeTask } from "./testing";

const BERLIN = "Europe/Berlin";

describe("draftOf and changesBetween", () => {
  const task = makeTask({ due_at: "2026-07-15T07:00:30.000Z", tags: ["home", "garden"] });

  it("shows the due date in the user's zone and the tags as text", () => {
    expect(draftOf(task, BERLIN)).toMatchObject({ due: "2026-07-15T09:00", tags: "home, garden" });
  });

  it("finds no change in an untouched draft, even with seconds in the due date", () => {
    expect(changesBetween(task, draftOf(task, BERLIN), BERLIN)).toEqual({});
  });

  it("names only the changed fields, the due date in UTC", () => {
    const draft = { ...draftOf(task, BERLIN), status: "done" as const, due: "2026-07-16T18:30" };
    expect(changesBetween(task, draft, BERLIN)).toEqual({
      status: "done",
      due_at: "2026-07-16T16:30:00.000Z",
    });
  });

  it("clears the due date and normalises tags and title", () => {
    const draft = { ...draftOf(task, BERLIN), due: "", tags: "Garden, home, ", title: " New " };
    expect(changesBetween(task, draft, BERLIN)).toEqual({
      due_at: null,
      tags: ["garden", "home"],
      title: "New",
    });
  });
});

describe("what an assignee or a viewer edits", () => {
  const task = makeTask();
  const edited = { ...draftOf(task, BERLIN), title: "Other", status: "done" as const };

  it("is the status only, or nothing", () => {
    expect(changesBetween(task, edited, BERLIN, "status")).toEqual({ status: "done" });
    expect(changesBetween(task, edited, BERLIN, "none")).toEqual({});
  });

  it("decides which newer versions can conflict", () => {
    const renamed = { ...task, title: "Renamed", version: 2 };
    expect(sameEditedFields(task, renamed, "all")).toBe(false);
    expect(sameEditedFields(task, renamed, "status")).toBe(true);
    expect(sameEditedFields(task, { ...task, status: "done" }, "status")).toBe(false);
    expect(sameEditedFields(task, { ...task, assignee_id: "someone", version: 2 }, "all")).toBe(true);
  });
});
