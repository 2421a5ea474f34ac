// What an application written in TypeScript sees: typed events and commands. `tsc --noEmit`
// must accept this file (test/types.test.mjs, and the packed package in
// tests/client/test_js_package.py); each `@ts-expect-error` line must be an error, or tsc
// fails with "Unused '@ts-expect-error' directive".
import {
  BugstreamClient,
  CommandError,
  type BugReport,
  type BugstreamEvent,
  type CommandResult,
  type Comment,
} from "bugstream-client";

export async function use(client: BugstreamClient): Promise<string[]> {
  const titles: string[] = [];
  client.on("bug_report", "created", (event) => {
    const bug: BugReport = event.payload;
    titles.push(bug.title, event.event);
  });
  client.on("comment", (event) => {
    const content: string = event.payload.content;
    const name: "created" | "updated" | "deleted" = event.event;
    titles.push(content, name);
  });
  client.on(null, null, (event: BugstreamEvent) => {
    if (event.type === "notification") titles.push(event.payload.message);
  });
  client.addEventListener("state", (e) => titles.push(e.detail.phase));
  client.addEventListener("welcome", (e) => titles.push(e.detail.user.username));

  const bug = await client.send("bug_report.create", { project_id: 1, title: "Crash" });
  const status: "open" | "in_progress" | "resolved" | "closed" | "reopened" = bug.status;
  const comment: Comment = await client.send("comment.create", {
    bug_report_id: bug.id,
    content: "seen on 1.2 too",
  });
  const marked: CommandResult<"notification.mark_all_read"> = await client.send(
    "notification.mark_all_read",
  );
  titles.push(status, comment.content, String(marked.ids.length));

  try {
    // @ts-expect-error: a title is a string
    await client.send("bug_report.create", { project_id: 1, title: 42 });
    // @ts-expect-error: project_id is required
    await client.send("bug_report.create", { title: "no project" });
    // @ts-expect-error: not a field of the command
    await client.send("bug_report.create", { project_id: 1, title: "x", severity: "high" });
    // @ts-expect-error: not a status
    await client.send("bug_report.change_status", { id: bug.id, status: "done" });
    // @ts-expect-error: no such command
    await client.send("bug_report.explode", {});
  } catch (error) {
    if (error instanceof CommandError) titles.push(error.code);
  }
  // @ts-expect-error: a comment event has no "assigned"
  client.on("comment", "assigned", () => {});
  client.on("bug_report", "updated", (event) => {
    // @ts-expect-error: a bug report has no `content`
    titles.push(event.payload.content);
  });
  return titles;
}
