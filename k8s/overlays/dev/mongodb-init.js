// Dev only, run by Job `mongodb-init` with `mongosh --nodb`; idempotent, so the Job can run
// again at any time. Initiates the single-node replica set `rs0` if it is not yet, waits for
// it to elect itself primary, then creates (or updates) one user per service with
// readWrite on that service's own database only: `taskmesh-<service>` on
// `<MONGODB_DATABASE_PREFIX><service>`. That is what keeps each service out of the others'
// databases on the one shared MongoDB ("only owners reach their database").
const SERVICES = ["auth", "users", "tasks", "notifications", "analytics"];
const env = process.env;
const host = env.MONGODB_HOST;
const url =
  `mongodb://${encodeURIComponent(env.MONGODB_ROOT_USERNAME)}:` +
  `${encodeURIComponent(env.MONGODB_ROOT_PASSWORD)}@${host}/admin` +
  "?directConnection=true&authSource=admin";

function command(database, spec) {
  try {
    const reply = database.runCommand(spec);
    return reply.ok === 1 ? reply : { ok: 0, code: reply.code, errmsg: reply.errmsg };
  } catch (error) {
    return { ok: 0, code: error.code, errmsg: error.message };
  }
}

function retry(what, attempt) {
  for (let tries = 1; ; tries++) {
    const reply = attempt();
    if (reply.ok === 1) return reply;
    if (tries >= 90) throw new Error(`${what}: ${reply.errmsg}`);
    print(`waiting: ${what}: ${reply.errmsg}`);
    sleep(2000);
  }
}

let admin;
retry(`connect to ${host}`, () => {
  try {
    admin = new Mongo(url).getDB("admin");
  } catch (error) {
    return { ok: 0, errmsg: error.message };
  }
  return command(admin, { ping: 1 });
});

const NOT_YET_INITIALIZED = 94;
const status = command(admin, { replSetGetStatus: 1 });
if (status.ok !== 1 && status.code === NOT_YET_INITIALIZED) {
  retry("replSetInitiate", () =>
    command(admin, {
      replSetInitiate: { _id: "rs0", members: [{ _id: 0, host: host }] },
    }),
  );
  print(`initiated replica set rs0 with member ${host}`);
} else if (status.ok !== 1) {
  throw new Error(`replSetGetStatus: ${status.errmsg}`);
}
retry("primary elected", () => {
  const hello = command(admin, { hello: 1 });
  return hello.ok === 1 && !hello.isWritablePrimary
    ? { ok: 0, errmsg: "not primary yet" }
    : hello;
});

for (const service of SERVICES) {
  const user = `taskmesh-${service}`;
  const pwd = env[`${service.toUpperCase()}_MONGODB_PASSWORD`];
  if (!pwd) throw new Error(`${service.toUpperCase()}_MONGODB_PASSWORD is not set`);
  const roles = [{ role: "readWrite", db: `${env.MONGODB_DATABASE_PREFIX}${service}` }];
  if (admin.getUser(user) === null) {
    admin.createUser({ user, pwd, roles });
    print(`created user ${user}`);
  } else {
    admin.updateUser(user, { pwd, roles });
    print(`updated user ${user}`);
  }
}
