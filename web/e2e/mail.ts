import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { expect } from "@playwright/test";

/**
 * Reading the suite's mail catcher: one .eml file per message in its directory, named so that
 * they sort in arrival order, written whole before they appear under that name.
 */

interface MimePart {
  headers: Map<string, string>;
  body: string;
}

/** Split a MIME entity into its (unfolded, lower-cased) headers and its raw body. */
function parseEntity(raw: string): MimePart {
  const text = raw.replace(/\r\n/g, "\n");
  const end = text.indexOf("\n\n");
  const head = end === -1 ? text : text.slice(0, end);
  const body = end === -1 ? "" : text.slice(end + 2);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\n[ \t]+/g, " ").split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  return { headers, body };
}

function decodeQuotedPrintable(body: string): string {
  const joined = body.replace(/=\n/g, "");
  const bytes: number[] = [];
  for (let index = 0; index < joined.length; index += 1) {
    const hex = joined.slice(index + 1, index + 3);
    if (joined[index] === "=" && /^[0-9A-F]{2}$/i.test(hex)) {
      bytes.push(parseInt(hex, 16));
      index += 2;
    } else {
      bytes.push(...Buffer.from(joined[index] ?? "", "utf8"));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

function decodeBody(part: MimePart): string {
  const encoding = (part.headers.get("content-transfer-encoding") ?? "7bit").toLowerCase();
  if (encoding === "base64") return Buffer.from(part.body, "base64").toString("utf8");
  if (encoding === "quoted-printable") return decodeQuotedPrintable(part.body);
  return part.body;
}

/** The text/plain body of a message (itself, or the first such part of a multipart one). */
function plainText(part: MimePart): string | undefined {
  const contentType = part.headers.get("content-type") ?? "text/plain";
  if (contentType.toLowerCase().startsWith("text/plain")) return decodeBody(part);
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (!contentType.toLowerCase().startsWith("multipart/") || !boundary) return undefined;
  const sections = part.body.split(`--${boundary}`).slice(1);
  for (const section of sections) {
    if (section.startsWith("--")) break; // the closing delimiter
    const text = plainText(parseEntity(section.replace(/^\n/, "")));
    if (text !== undefined) return text;
  }
  return undefined;
}

export interface Mail {
  to: string;
  subject: string;
  text: string;
}

/** Every message in the mail directory addressed to `address`, in arrival order. */
export async function mailsTo(mailDir: string, address: string): Promise<Mail[]> {
  const names = (await readdir(mailDir).catch(() => [] as string[]))
    .filter((name) => name.endsWith(".eml"))
    .sort();
  const mails: Mail[] = [];
  for (const name of names) {
    const message = parseEntity(await readFile(path.join(mailDir, name), "utf8"));
    const to = message.headers.get("to") ?? "";
    if (!to.toLowerCase().includes(address.toLowerCase())) continue;
    const subject = message.headers.get("subject") ?? "";
    mails.push({ to, subject, text: plainText(message) ?? "" });
  }
  return mails;
}

export interface PasswordReset {
  token: string;
  /** The link of the email, which opens the app's reset page. */
  link: string;
}

/** Wait for the password-reset email to `address`; return its token and link. */
export async function waitForPasswordReset(
  mailDir: string,
  address: string,
): Promise<PasswordReset> {
  let reset: PasswordReset | undefined;
  await expect
    .poll(
      async () => {
        for (const mail of await mailsTo(mailDir, address)) {
          const token = /^token: (\S+)$/m.exec(mail.text)?.[1];
          const link = /^(https?:\/\/\S+\/reset-password\?token=\S+)$/m.exec(mail.text)?.[1];
          if (token && link) reset = { token, link };
        }
        return reset !== undefined;
      },
      { message: `a password-reset email to ${address} in ${mailDir}`, timeout: 15_000 },
    )
    .toBe(true);
  if (!reset) throw new Error(`no password-reset email to ${address}`);
  return reset;
}
