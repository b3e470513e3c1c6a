//! What the cluster keeps in Redis, and the Lua scripts that change it atomically.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `mw:instances` | set | ids of instances that registered and were not reaped |
//! | `mw:instance:{id}` | string, TTL `--instance-ttl` | liveness: refreshed by each heartbeat |
//! | `mw:instance:{id}:peers` | set of `room\npeer` | the peers that instance owns, to reap them when it dies |
//! | `mw:room:{room}` | hash peer → record | the room's members, cluster-wide; `HLEN` is its size |
//! | `mw:rooms` | set | names of rooms with at least one member |
//! | `mw:queue:{room}:{peer}` | list, TTL `--resume-grace` | signals published to a peer's instance that nobody received (≤ 64), for its resume elsewhere or its instance's return |
//!
//! A record is `instance \n user \n info`: the owning instance, the member's user id
//! as JSON (`null` without auth; JSON keeps it free of newlines), and its `PeerInfo`
//! JSON as the other peers see it. Channels: `mw:to:{id}` (see `wire.rs`).
//!
//! The scripts reach keys they compute from arguments (`mw:instance:{old}:peers`), so
//! this needs a standalone Redis (or one behind Sentinel), not Redis Cluster.

use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};

/// Every key begins with this.
pub const PREFIX: &str = "mw:";

/// The set of registered instances.
pub fn instances() -> String {
    format!("{PREFIX}instances")
}
/// An instance's liveness key.
pub fn alive(id: &str) -> String {
    format!("{PREFIX}instance:{id}")
}
/// The set of an instance's peers.
pub fn owned(id: &str) -> String {
    format!("{PREFIX}instance:{id}:peers")
}
/// A room's member hash.
pub fn room(name: &str) -> String {
    format!("{PREFIX}room:{name}")
}
/// The set of non-empty rooms.
pub fn rooms() -> String {
    format!("{PREFIX}rooms")
}
/// Signals kept for a peer whose instance did not receive them (it died, or lost
/// Redis), for `--resume-grace`, until the peer resumes elsewhere.
pub fn queue(room: &str, peer: &str) -> String {
    format!("{PREFIX}queue:{room}:{peer}")
}
/// An instance's channel.
pub fn channel(id: &str) -> String {
    format!("{PREFIX}to:{id}")
}

/// A member record, split.
pub struct Record<'a> {
    /// Owning instance.
    pub instance: &'a str,
    /// `PeerInfo` JSON.
    pub info: &'a str,
}

/// Splits a record; `None` if malformed.
pub fn parse_record(rec: &str) -> Option<Record<'_>> {
    let (instance, rest) = rec.split_once('\n')?;
    let (_user, info) = rest.split_once('\n')?;
    Some(Record { instance, info })
}

/// Builds a record.
pub fn record(instance: &str, user: Option<&str>, info: &str) -> String {
    let user = serde_json::to_string(&user).unwrap_or_else(|_| "null".into());
    format!("{instance}\n{user}\n{info}")
}

/// Lua helper: the distinct instances of the records in hash `key`.
const INSTANCES_OF: &str = r#"
local function instances_of(key)
  local seen, out = {}, {}
  for _, rec in ipairs(redis.call('HVALS', key)) do
    local inst = string.match(rec, '^([^\n]*)')
    if not seen[inst] then seen[inst] = true; out[#out + 1] = inst end
  end
  return out
end
"#;

/// KEYS: room hash, rooms set, own peer set. ARGV: room, peer, me, user json, info,
/// capacity, resuming (`1`/`0`). Returns `{status, field, value, …}` (the room after
/// the join, as HGETALL) where status is `joined` or `resumed:<old instance>`, or just
/// `{full}`, `{taken}` (id in use without resume) or `{other-user}`.
const JOIN: &str = r#"
local rec = redis.call('HGET', KEYS[1], ARGV[2])
local status = 'joined'
local entry = ARGV[1] .. '\n' .. ARGV[2]
if rec then
  if ARGV[7] ~= '1' then return {'taken'} end
  local inst, user, info = string.match(rec, '^([^\n]*)\n([^\n]*)\n(.*)$')
  if not inst then return {'taken'} end
  if user ~= ARGV[4] then return {'other-user'} end
  status = 'resumed:' .. inst
  if inst ~= ARGV[3] then
    redis.call('SREM', 'mw:instance:' .. inst .. ':peers', entry)
  end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3] .. '\n' .. user .. '\n' .. info)
else
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[6]) then return {'full'} end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3] .. '\n' .. ARGV[4] .. '\n' .. ARGV[5])
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], entry)
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, status)
return out
"#;

/// KEYS: room hash, rooms set, own peer set. ARGV: room, peer, me. Removes the member
/// if this instance still owns it; returns the distinct instances of the members left
/// (empty when the room emptied or the member belongs to someone else now).
const LEAVE: &str = r#"
redis.call('SREM', KEYS[3], ARGV[1] .. '\n' .. ARGV[2])
local rec = redis.call('HGET', KEYS[1], ARGV[2])
if not rec or string.sub(rec, 1, #ARGV[3] + 1) ~= ARGV[3] .. '\n' then return {} end
redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  return {}
end
return instances_of(KEYS[1])
"#;

/// KEYS: room hash, rooms set, own peer set. ARGV: room, peer, me, record. Puts a
/// local member back after Redis lost it (restart, or this instance was reaped while
/// cut off), unless another instance owns the peer now. Returns 1 if written.
const RESTORE: &str = r#"
local rec = redis.call('HGET', KEYS[1], ARGV[2])
if rec and string.sub(rec, 1, #ARGV[3] + 1) ~= ARGV[3] .. '\n' then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1] .. '\n' .. ARGV[2])
return 1
"#;

/// KEYS: instances set. ARGV: dead instance. Unless it came back, removes every member
/// it still owns and forgets it. Returns `{{room, peer, instance…}, …}`: each removed
/// peer with the instances still in its room (who must be told).
const REAP: &str = r#"
if redis.call('EXISTS', 'mw:instance:' .. ARGV[1]) == 1 then return {} end
local set = 'mw:instance:' .. ARGV[1] .. ':peers'
local out = {}
for _, e in ipairs(redis.call('SMEMBERS', set)) do
  local room, peer = string.match(e, '^([^\n]*)\n(.*)$')
  if room then
    local key = 'mw:room:' .. room
    local rec = redis.call('HGET', key, peer)
    if rec and string.sub(rec, 1, #ARGV[1] + 1) == ARGV[1] .. '\n' then
      redis.call('HDEL', key, peer)
      local insts = instances_of(key)
      if #insts == 0 then
        redis.call('DEL', key)
        redis.call('SREM', 'mw:rooms', room)
      end
      local item = {room, peer}
      for _, i in ipairs(insts) do item[#item + 1] = i end
      out[#out + 1] = item
    end
  end
end
redis.call('DEL', set)
redis.call('SREM', KEYS[1], ARGV[1])
return out
"#;

/// What a join script said.
pub enum Joined {
    /// Admitted; the room as it is now (peer id, record).
    Joined(Vec<(String, String)>),
    /// The peer's record existed and now belongs to this instance; it was on `from`.
    Resumed {
        /// The instance that owned it.
        from: String,
        /// The room as it is now.
        members: Vec<(String, String)>,
    },
    /// The room is at capacity, cluster-wide.
    Full,
    /// The id is in use and this was not a resume.
    Taken,
    /// The resume token's peer belongs to another user.
    OtherUser,
}

/// The scripts, loaded once (EVALSHA, reloaded by the crate after a Redis restart).
pub struct Scripts {
    join: Script,
    leave: Script,
    restore: Script,
    reap: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            join: Script::new(JOIN),
            leave: Script::new(&format!("{INSTANCES_OF}{LEAVE}")),
            restore: Script::new(RESTORE),
            reap: Script::new(&format!("{INSTANCES_OF}{REAP}")),
        }
    }
}

impl Scripts {
    /// Runs the join script.
    #[allow(clippy::too_many_arguments)]
    pub async fn join(
        &self,
        con: &mut ConnectionManager,
        me: &str,
        room_name: &str,
        peer: &str,
        user: Option<&str>,
        info: &str,
        capacity: u32,
        resuming: bool,
    ) -> RedisResult<Joined> {
        let user = serde_json::to_string(&user).unwrap_or_else(|_| "null".into());
        let out: Vec<String> = self
            .join
            .key(room(room_name))
            .key(rooms())
            .key(owned(me))
            .arg(room_name)
            .arg(peer)
            .arg(me)
            .arg(user)
            .arg(info)
            .arg(capacity)
            .arg(if resuming { "1" } else { "0" })
            .invoke_async(con)
            .await?;
        let mut it = out.into_iter();
        let status = it.next().unwrap_or_default();
        let mut members = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            members.push((k, v));
        }
        Ok(match status.as_str() {
            "joined" => Joined::Joined(members),
            "full" => Joined::Full,
            "other-user" => Joined::OtherUser,
            s => match s.strip_prefix("resumed:") {
                Some(from) => Joined::Resumed {
                    from: from.to_string(),
                    members,
                },
                None => Joined::Taken,
            },
        })
    }

    /// Runs the leave script: the instances still in the room.
    pub async fn leave(
        &self,
        con: &mut ConnectionManager,
        me: &str,
        room_name: &str,
        peer: &str,
    ) -> RedisResult<Vec<String>> {
        self.leave
            .key(room(room_name))
            .key(rooms())
            .key(owned(me))
            .arg(room_name)
            .arg(peer)
            .arg(me)
            .invoke_async(con)
            .await
    }

    /// Runs the restore script: whether the record was written.
    pub async fn restore(
        &self,
        con: &mut ConnectionManager,
        me: &str,
        room_name: &str,
        peer: &str,
        record: &str,
    ) -> RedisResult<bool> {
        let n: i64 = self
            .restore
            .key(room(room_name))
            .key(rooms())
            .key(owned(me))
            .arg(room_name)
            .arg(peer)
            .arg(me)
            .arg(record)
            .invoke_async(con)
            .await?;
        Ok(n == 1)
    }

    /// A pipeline running the restore script for each member (room, peer, record):
    /// one round trip for many, where [`Scripts::restore`] takes one each.
    pub fn restore_pipeline(
        &self,
        me: &str,
        members: &[(String, String, String)],
    ) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        // EVALSHA in a pipeline does not load the script by itself.
        pipe.load_script(&self.restore).ignore();
        for (room_name, peer, record) in members {
            let mut inv = self.restore.prepare_invoke();
            inv.key(room(room_name))
                .key(rooms())
                .key(owned(me))
                .arg(room_name)
                .arg(peer)
                .arg(me)
                .arg(record);
            pipe.invoke_script(&inv).ignore();
        }
        pipe
    }

    /// Runs the reap script for a dead instance.
    pub async fn reap(
        &self,
        con: &mut ConnectionManager,
        dead: &str,
    ) -> RedisResult<Vec<Vec<String>>> {
        self.reap.key(instances()).arg(dead).invoke_async(con).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_back_into_their_parts() {
        let info = r#"{"id":"p","name":"a\nb"}"#;
        let rec = record("inst1", Some("user\nwith newline"), info);
        // The user id is JSON, so the record has exactly two raw newlines before info.
        assert_eq!(rec.matches('\n').count(), 2);
        let r = parse_record(&rec).expect("parses");
        assert_eq!((r.instance, r.info), ("inst1", info));
        let rec = record("i", None, "{}");
        let r = parse_record(&rec).expect("parses");
        assert_eq!((r.instance, r.info), ("i", "{}"));
        assert!(parse_record("no newline").is_none());
    }
}
