import type { InfiniteData } from "@tanstack/react-query";
import type { Profile, ProfilePage } from "../../api/types";
import { makeProfile } from "../../test/fixtures";
import { replaceProfile, userListParams } from "./adminUsers";

describe("userListParams", () => {
  it("leaves out every filter left at its default", () => {
    expect(userListParams({ search: "  ", role: "any", active: "any" })).toEqual({});
  });

  it("sends the trimmed search, the role and the active flag", () => {
    expect(userListParams({ search: " ada ", role: "admin", active: "active" })).toEqual({
      q: "ada",
      role: "admin",
      active: true,
    });
    expect(userListParams({ search: "", role: "user", active: "inactive" })).toEqual({
      role: "user",
      active: false,
    });
  });
});

describe("replaceProfile", () => {
  const profile = (id: string, name: string): Profile =>
    makeProfile({ id, name, email: `${name.toLowerCase()}@example.com` });

  it("swaps the updated profile in place, across pages, leaving the others", () => {
    const ada = profile("a", "Ada");
    const bob = profile("b", "Bob");
    const cy = profile("c", "Cy");
    const data: InfiniteData<ProfilePage, string | null> = {
      pages: [
        { items: [ada, bob], next_cursor: "n1" },
        { items: [cy], next_cursor: null },
      ],
      pageParams: [null, "n1"],
    };
    const demotedCy = { ...cy, active: false };

    const updated = replaceProfile(data, demotedCy);

    expect(updated.pages.map((page) => page.items)).toEqual([[ada, bob], [demotedCy]]);
    expect(updated.pageParams).toEqual([null, "n1"]);
    expect(data.pages[1]?.items[0]).toBe(cy);
  });
});
