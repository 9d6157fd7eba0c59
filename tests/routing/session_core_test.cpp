// The session core over real drivers' recorded conversations (tests/recordings), with no sockets.
// A simulated edge plays each conversation: the client's messages arrive as the recording says
// (a message the client sent after reading an answer arrives only once that answer was
// relayed), the server's answers come from the recording once the core has forwarded the
// request each answers. Every conversation is played whole, a byte at a time, and cut at every
// byte; each time, no write reaches a replica, every answer has its request, nothing is left.
// The table at the end says which servers each flow's units ran on.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <set>

#include "protocol/framing.hpp"
#include "protocol/frontend.hpp"
#include "protocol/pipeline.hpp"
#include "routing/session_core.hpp"
#include "tests/recordings/pgtrace.hpp"
#include "tests/routing/pg15_functions.hpp"

using namespace meridian;
using routing::session_core;
using testing::side;
using step_kind = session_core::step_kind;

namespace {

const std::filesystem::path recordings = std::filesystem::path(MERIDIAN_TEST_DATA_DIR) / "recordings";

routing::classification_cache& cache() {
  static routing::classification_cache c(10000, meridian::testing::pg15_functions());
  return c;
}

routing::statement_classifier& classifier() {
  static routing::cache_classifier c(cache());
  return c;
}

// One conversation's query phase, with what each server message waits for.
struct script {
  std::vector<std::string> client;        // typed client messages, in order
  std::vector<std::size_t> client_after;  // server messages relayed before each was sent
  std::vector<std::string> server;        // typed server messages, in order
  std::vector<long> answers;              // the client message each answers (-1: none)
  std::string stream;                     // the client's messages, concatenated
  std::vector<std::size_t> starts;        // where each begins in `stream`
};

script make_script(const testing::conversation& c) {
  script s;
  protocol::pipeline reference;  // which request each server message answers (tag: its index)
  long last_answer = -1;
  for (auto i = testing::query_phase_start(c); i < c.messages.size(); ++i) {
    const auto& m = c.messages[i];
    if (!m.typed) continue;
    const char type = m.bytes[0];
    if (m.from == side::client) {
      s.client_after.push_back(s.server.size());
      s.starts.push_back(s.stream.size());
      s.stream += m.bytes;
      reference.sent(type, type == 'D' ? m.bytes[5] : 'S', false, static_cast<std::uint32_t>(s.client.size()));
      s.client.push_back(m.bytes);
      continue;
    }
    if (type != 'S' && type != 'N' && type != 'A') {
      const auto head = reference.front();
      last_answer = head ? static_cast<long>(head->tag) : -1;
    }
    (void)reference.received(type);
    s.server.push_back(m.bytes);
    s.answers.push_back(last_answer);
  }
  return s;
}

// Whether a statement needs the primary, by the rule (the test's own reading).
bool writes(std::string_view sql) {
  const auto c = cache().get(sql);
  return c.where == routing::target::primary || c.tx == routing::tx_effect::begin || c.pins_session ||
         routing::leading_hint(sql) == routing::hint::primary;
}

struct outcome {
  std::string units;  // per unit: R (a replica) or P (the primary); s: Meridian's own Sync
  std::vector<std::string> failures;
  bool operator==(const outcome&) const = default;
};

// Plays a script; `cuts` are where the client's bytes are split besides where the client waited.
outcome play(const script& s, const std::set<std::size_t>& cuts) {
  outcome out;
  session_core core(classifier(), {});
  protocol::pipeline pl;  // the edge's: which request each answer belongs to
  std::size_t consumed = 0, delivered = 0, relayed = 0, next_client = 0;
  bool own_sync_owed = false, ended = false;
  long own_sync_after = -1;           // the last client message sent before Meridian's own Sync
  std::set<long> answered_by_core;  // client Syncs that Meridian answered itself
  long forwarded = -1;  // the last client message forwarded
  std::map<std::string, bool> statement_writes, portal_writes, statement_commits;
  // Write authority is held throughout: each authorize step is granted for the message in front.
  bool authorized = false;
  long checked_until = -1;  // the last message of the unit as whole when it was checked out
  auto fail = [&](std::string why) { out.failures.push_back(std::move(why)); };
  auto available = [&] {
    while (next_client < s.client.size() && s.client_after[next_client] <= relayed) ++next_client;
    return next_client < s.client.size() ? s.starts[next_client] : s.stream.size();
  };
  auto deliver_client = [&] {
    const auto end = available();
    if (delivered >= end) return false;
    auto cut = cuts.upper_bound(delivered);
    delivered = cut != cuts.end() && *cut < end ? *cut : end;
    return true;
  };
  auto deliver_server = [&] {
    // Answers the client got from Meridian instead (a skipped batch's Sync).
    bool skipped = false;
    while (relayed < s.server.size() && answered_by_core.count(s.answers[relayed])) {
      ++relayed;
      skipped = true;
    }
    // The replica answers Meridian's own Sync after all it was sent before it.
    if (own_sync_owed && (relayed == s.server.size() || s.answers[relayed] > own_sync_after)) {
      own_sync_owed = false;
      const auto v = pl.received('Z');
      if (v.forward || v.unexpected) fail("the answer to Meridian's own Sync taken as the client's");
      core.server_ready(protocol::tx_status::idle, true);
      return true;
    }
    if (relayed == s.server.size() || s.answers[relayed] > forwarded) return skipped;
    const auto& m = s.server[relayed];
    const auto v = pl.received(m[0]);
    if (v.unexpected) fail("server message " + std::to_string(relayed) + " ('" + m[0] + "') taken as unexpected");
    if (!v.forward) fail("server message " + std::to_string(relayed) + " not relayed");
    if (m[0] == 'Z') core.server_ready(static_cast<protocol::tx_status>(m[5]));
    if (m[0] == 'E' && !v.unsolicited) core.server_error();
    ++relayed;
    return true;
  };
  auto check_forward = [&](std::size_t index) {
    const auto& m = s.client[index];
    const std::string_view body = std::string_view(m).substr(protocol::typed_header_size);
    bool write = false, commits = false;
    switch (m[0]) {
      case 'Q':
        write = writes(protocol::fe::parse_query(body)->sql);
        commits = cache().get(protocol::fe::parse_query(body)->sql).commits;
        break;
      case 'P': {
        auto p = protocol::fe::parse_parse(body);
        write = statement_writes[std::string(p->statement)] = writes(p->sql);
        statement_commits[std::string(p->statement)] = cache().get(p->sql).commits;
        break;
      }
      case 'B': {
        auto b = protocol::fe::parse_bind(body);
        write = portal_writes[std::string(b->portal)] = statement_writes[std::string(b->statement)];
        commits = statement_commits[std::string(b->statement)];
        break;
      }
      case 'E': write = portal_writes[std::string(protocol::fe::parse_execute(body)->portal)]; break;
      case 'F': write = true; break;
      default: break;
    }
    if (write && core.on_replica()) fail("client message " + std::to_string(index) + " may write; sent to a replica");
    // Past its unit's checkout, nothing commits on the primary without write authority.
    if (commits && !core.on_replica() && static_cast<long>(index) > checked_until && !authorized &&
        core.transaction_status() != protocol::tx_status::failed)
      fail("client message " + std::to_string(index) + " commits on the primary unauthorized");
    authorized = false;
  };

  for (std::size_t guard = 0; !ended; ++guard) {
    if (guard > 64 * (s.stream.size() + s.server.size() + 16)) {
      fail("no progress: the core goes round in circles");
      break;
    }
    const auto view = std::string_view(s.stream).substr(consumed, delivered - consumed);
    const auto st = core.next(view, {!pl.empty(), pl.copying_in()});
    switch (st.kind) {
      case step_kind::need_more:
        if (!deliver_client() && !deliver_server()) ended = true;
        break;
      case step_kind::wait_server:
        if (!deliver_server()) {
          fail("waits for a server that owes nothing (at client byte " + std::to_string(consumed) + ")");
          ended = true;
        }
        break;
      case step_kind::attach:
        out.units += st.request.where == routing::target::primary ? 'P' : 'R';
        pl.clear();
        core.attached(st.request.where != routing::target::primary);
        checked_until = -1;
        for (auto i = static_cast<std::size_t>(std::upper_bound(s.starts.begin(), s.starts.end(), consumed) -
                                               s.starts.begin() - 1);
             i < s.client.size() && s.starts[i] + s.client[i].size() <= delivered; ++i) {
          checked_until = static_cast<long>(i);
          if (s.client[i][0] == 'S' || s.client[i][0] == 'Q' || s.client[i][0] == 'F') break;
        }
        break;
      case step_kind::authorize:
        out.units += 'a';
        core.authorize();
        authorized = true;
        break;
      case step_kind::forward: {
        const auto index = static_cast<std::size_t>(
            std::upper_bound(s.starts.begin(), s.starts.end(), consumed) - s.starts.begin() - 1);
        if (s.starts[index] != consumed || s.client[index].size() != st.length) fail("forward off a message boundary");
        check_forward(index);
        pl.sent(s.client[index][0], s.client[index][0] == 'D' ? s.client[index][5] : 'S');
        forwarded = static_cast<long>(index);
        consumed += st.length;
        break;
      }
      case step_kind::drop:
        consumed += st.length;
        break;
      case step_kind::send_sync:
        out.units += 's';
        pl.sent(protocol::pending_request{protocol::request_kind::sync, true});
        own_sync_owed = true;
        own_sync_after = forwarded;
        break;
      case step_kind::release:
        core.released();
        break;
      case step_kind::answer_ready:
        out.units += 'z';
        answered_by_core.insert(static_cast<long>(
            std::upper_bound(s.starts.begin(), s.starts.end(), consumed) - s.starts.begin() - 1));
        consumed += st.length;
        break;
      case step_kind::terminate:
        consumed += st.length;
        ended = true;
        break;
      case step_kind::answer_lost:
        fail("answers for a lost server, none being lost");
        ended = true;
        break;
      case step_kind::violation:
        fail(std::string("violation: ") + st.why);
        ended = true;
        break;
    }
  }
  if (relayed != s.server.size())
    fail("server messages left: " + std::to_string(s.server.size() - relayed) + " of " + std::to_string(s.server.size()));
  if (consumed != s.stream.size()) fail("client bytes left: " + std::to_string(s.stream.size() - consumed));
  return out;
}

// Plays a conversation whole, a byte at a time, and cut at every byte (at most `max_cuts`
// evenly spread cuts for long ones). Returns the whole play's outcome.
outcome play_every_way(const std::string& name, const script& s, std::size_t max_cuts = 2048) {
  INFO(name);
  const auto whole = play(s, {});
  CHECK(whole.failures == std::vector<std::string>{});
  std::set<std::size_t> every;
  for (std::size_t i = 1; i < s.stream.size(); ++i) every.insert(i);
  const auto bytewise = play(s, every);
  CHECK(bytewise.failures == std::vector<std::string>{});
  const std::size_t n = s.stream.size();
  const std::size_t stride = n > max_cuts ? n / max_cuts : 1;
  for (std::size_t k = 1; k < n; k += stride) {
    const auto cut = play(s, {k});
    if (!cut.failures.empty()) {
      INFO("cut at client byte " << k);
      CHECK(cut.failures == std::vector<std::string>{});
      break;
    }
  }
  return whole;
}

}  // namespace

TEST_CASE("session core: every recorded conversation, whole, bytewise and cut at every byte", "[routing][session_core]") {
  int played = 0;
  for (const auto& t : testing::read_all_traces(recordings)) {
    for (const auto& c : t.conversations) {
      const auto s = make_script(c);
      if (s.client.empty()) continue;
      play_every_way(t.name + " connection " + std::to_string(c.number), s, t.name.starts_with("pg_dump") ? 64 : 2048);
      ++played;
    }
  }
  CHECK(played >= 35);
}

TEST_CASE("session core: where each recorded flow's units run", "[routing][session_core]") {
  // R: a replica may serve the unit; P: the primary; s: Meridian closed a replica's batch with
  // a Sync of its own before the batch moved to the primary. Delivered as the client sent it.
  const std::map<std::string, std::string> expected{
      // Parse/Describe/Flush of a read, Bind/Execute/Sync: a replica; then the INSERT.
      {"asyncpg/prepare-then-insert", "RP"},
      // A prepared read whose batch is still open when the COPY arrives: closed, moved; the
      // INSERT after it is a unit of its own.
      {"asyncpg/prepare-then-copy", "RsPP"},
      {"raw/parse-flush-then-query", "RsP"},
      // Two Queries in one write: the SELECT on a replica, the INSERT waits, then the primary.
      {"raw/two-queries", "RP"},
      // One pipeline, one Sync, reads and writes: one implicit transaction on the primary.
      {"psycopg/pipeline-autocommit", "P"},
      {"libpq/pipeline", "PP"},
      // COPY through the extended protocol, then a read.
      {"libpq/execparams-copy", "PR"},
      // pgx prepares each statement of a batch in a unit of its own, then runs them in one.
      {"pgx/batch", "RPRP"},
  };
  std::set<std::string> seen;
  for (const auto& t : testing::read_all_traces(recordings)) {
    auto it = expected.find(t.name);
    if (it == expected.end()) continue;
    seen.insert(t.name);
    INFO(t.name);
    const auto out = play(make_script(t.conversations.front()), {});
    CHECK(out.failures == std::vector<std::string>{});
    CHECK(out.units == it->second);
  }
  CHECK(seen.size() == expected.size());
}

// Rules no recording shows, on hand-made sequences.
namespace {

std::string query(std::string_view sql) {
  std::string out;
  protocol::fe::serialize(protocol::fe::query{sql}, out);
  return out;
}
std::string empty(char type) {
  std::string out;
  protocol::fe::serialize_empty(type, out);
  return out;
}

// The core with the edge's request pipeline, fed by hand.
struct edge {
  session_core core{classifier(), {}};
  protocol::pipeline pl;
  std::string in;

  session_core::step next() { return core.next(in, {!pl.empty(), pl.copying_in()}); }
  // Steps until the core needs something else than a forward or a drop.
  session_core::step run() {
    for (;;) {
      auto st = next();
      if (st.kind != step_kind::forward && st.kind != step_kind::drop) return st;
      if (st.kind == step_kind::forward) pl.sent(in[0]);
      in.erase(0, st.length);
    }
  }
  void attach(const session_core::step& st) {
    pl.clear();
    core.attached(st.request.where != routing::target::primary);
  }
  // BEGIN, on the primary, answered: a transaction block is open.
  void begin_block() {
    in = query("BEGIN");
    const auto st = next();
    REQUIRE(st.kind == step_kind::attach);
    attach(st);
    CHECK(run().kind == step_kind::need_more);
    answer("CZ", 'T');
  }
  // The rest of a batch skipped: `drops` messages dropped, then its Sync answered with `ready`.
  void skipped_to_sync(int drops, protocol::tx_status ready) {
    for (int i = 0; i < drops; ++i) {
      const auto st = next();
      REQUIRE(st.kind == step_kind::drop);
      in.erase(0, st.length);
    }
    const auto st = next();
    REQUIRE(st.kind == step_kind::answer_ready);
    CHECK(st.ready == ready);
    in.erase(0, st.length);
  }
  // The server answers with `types`; a ReadyForQuery with `status`.
  void answer(std::string_view types, char status = 'I') {
    for (char t : types) {
      const auto v = pl.received(t);
      REQUIRE_FALSE(v.unexpected);
      if (t == 'Z') core.server_ready(static_cast<protocol::tx_status>(status));
      if (t == 'E') core.server_error();
    }
  }
};

}  // namespace

TEST_CASE("session core: a transaction block stays on its server until it ends", "[routing][session_core]") {
  edge e;
  e.in = query("BEGIN") + query("SELECT 1");
  auto st = e.next();
  REQUIRE(st.kind == step_kind::attach);
  CHECK(st.request.where == routing::target::primary);
  e.attach(st);
  CHECK(e.run().kind == step_kind::need_more);  // both go: the primary runs anything
  e.answer("CZ", 'T');
  CHECK(e.next().kind == step_kind::need_more);  // in a transaction, one answer owed: kept
  e.answer("TDCZ", 'T');
  CHECK(e.next().kind == step_kind::need_more);  // nothing owed, still in the transaction: kept
  e.in = query("COMMIT");
  CHECK(e.run().kind == step_kind::authorize);  // it commits on the primary: authority first
  e.core.authorize();
  CHECK(e.run().kind == step_kind::need_more);
  e.answer("CZ", 'I');
  CHECK(e.next().kind == step_kind::release);
}

TEST_CASE("session core: past its checkout, what may write or commits on the primary is put to write authority",
          "[routing][session_core]") {
  edge e;
  // A transaction block: BEGIN was checked at checkout, the writes inside it need nothing (they
  // become durable only at COMMIT), a ROLLBACK needs nothing, a COMMIT does.
  e.in = query("BEGIN");
  auto st = e.next();
  REQUIRE(st.kind == step_kind::attach);
  e.attach(st);
  CHECK(e.run().kind == step_kind::need_more);
  e.answer("CZ", 'T');
  e.in = query("INSERT INTO t VALUES (1)") + query("SAVEPOINT s") + query("ROLLBACK TO s");
  CHECK(e.run().kind == step_kind::need_more);
  e.answer("CZCZCZ", 'T');
  e.in = query("END");
  CHECK(e.next().kind == step_kind::authorize);
  CHECK(e.next().kind == step_kind::authorize);  // asked until granted or refused
  // Refused: the edge closed the server; the session starts afresh.
  e.core.abandon();
  CHECK_FALSE(e.core.attached());
  CHECK(e.core.transaction_status() == protocol::tx_status::idle);
  e.in = query("SELECT 1");
  st = e.next();
  CHECK(st.kind == step_kind::attach);
  CHECK(st.request.where == routing::target::any);

  // A failed block's COMMIT is a rollback: nothing to authorize.
  edge f;
  f.in = query("BEGIN");
  f.attach(f.next());
  CHECK(f.run().kind == step_kind::need_more);
  f.answer("CZ", 'E');
  f.in = query("COMMIT");
  CHECK(f.run().kind == step_kind::need_more);
  f.answer("CZ", 'I');
  CHECK(f.next().kind == step_kind::release);
  f.core.released();
  // ROLLBACK needs nothing either.
  f.in = query("BEGIN");
  f.attach(f.next());
  CHECK(f.run().kind == step_kind::need_more);
  f.answer("CZ", 'T');
  f.in = query("ROLLBACK");
  CHECK(f.run().kind == step_kind::need_more);

  // Autocommit writes pipelined on the primary after the unit it was checked out for: each is
  // put to authority, reads are not.
  edge g;
  g.in = query("INSERT INTO t VALUES (1)") + query("INSERT INTO t VALUES (2)");
  g.attach(g.next());
  CHECK(g.run().kind == step_kind::authorize);  // the first went with its checkout
  g.core.authorize();
  CHECK(g.run().kind == step_kind::need_more);
  g.in = query("SELECT 1");
  CHECK(g.run().kind == step_kind::need_more);
  // An extended-protocol write in a batch of its own: its Bind (what runs it) is put to it.
  std::string parse, bind;
  protocol::fe::serialize(protocol::fe::parse{"", "INSERT INTO t VALUES ($1)", {}}, parse);
  protocol::fe::serialize(protocol::fe::bind{"", "", std::string_view("\0\0\0\0\0\0", 6)}, bind);
  g.in = parse + bind;
  CHECK(g.run().kind == step_kind::authorize);
  CHECK(g.in.size() == bind.size());
  g.core.authorize();
  CHECK(g.run().kind == step_kind::need_more);

  // A replica's commit (a read-only block) needs no authority.
  edge r;
  r.in = query("BEGIN READ ONLY");
  r.attach(r.next());
  CHECK(r.core.on_replica());
  CHECK(r.run().kind == step_kind::need_more);
  r.answer("CZ", 'T');
  r.in = query("COMMIT");
  CHECK(r.run().kind == step_kind::need_more);
}

TEST_CASE("session core: a write pipelined after BEGIN READ ONLY runs in that transaction", "[routing][session_core]") {
  // The replica refuses it (25006), as PostgreSQL refuses a write in a read-only transaction.
  edge e;
  e.in = query("BEGIN READ ONLY") + query("INSERT INTO t VALUES (1)");
  auto st = e.next();
  REQUIRE(st.kind == step_kind::attach);
  CHECK(st.request.where == routing::target::any);
  e.attach(st);
  CHECK(e.run().kind == step_kind::wait_server);  // the INSERT waits for BEGIN's answer
  e.answer("CZ", 'T');
  CHECK(e.next().kind == step_kind::forward);
  CHECK(e.core.on_replica());
}

TEST_CASE("session core: a session pinned by a temporary table keeps its server", "[routing][session_core]") {
  edge e;
  e.in = query("CREATE TEMP TABLE tt (x int)");
  const auto st = e.next();
  REQUIRE(st.kind == step_kind::attach);
  e.attach(st);
  CHECK(e.run().kind == step_kind::need_more);
  e.answer("CZ");
  CHECK(e.core.pinned());
  CHECK(e.next().kind == step_kind::need_more);  // not released
  // DISCARD ALL drops the session's state: the server goes back once it has answered.
  e.in = query("DISCARD ALL");
  CHECK(e.run().kind == step_kind::need_more);
  e.answer("CZ");
  CHECK_FALSE(e.core.pinned());
  CHECK(e.next().kind == step_kind::release);
}

TEST_CASE("session core: a replica's batch that failed is skipped up to its Sync, which is answered",
          "[routing][session_core]") {
  // Parse/Bind/Execute of a read on the replica, flushed; then a write in the same batch. The
  // replica's batch is closed with Meridian's Sync, but it had failed: the write is not run.
  edge e;
  std::string batch;
  protocol::fe::serialize(protocol::fe::parse{"", "SELECT 1/0", {}}, batch);
  protocol::fe::serialize(protocol::fe::bind{"", "", std::string_view("\0\0\0\0\0\0", 6)}, batch);
  protocol::fe::serialize(protocol::fe::execute{"", 0}, batch);
  batch += empty('H');
  e.in = batch;
  auto st = e.next();
  REQUIRE(st.kind == step_kind::attach);
  CHECK(st.request.where == routing::target::any);
  e.attach(st);
  CHECK(e.run().kind == step_kind::need_more);
  e.answer("12E");  // the error: the replica now skips to a Sync
  e.in = query("INSERT INTO t VALUES (1)");
  st = e.next();
  REQUIRE(st.kind == step_kind::send_sync);
  e.pl.sent(protocol::pending_request{protocol::request_kind::sync, true});
  CHECK(e.next().kind == step_kind::wait_server);
  REQUIRE_FALSE(e.pl.received('Z').forward);
  e.core.server_ready(protocol::tx_status::idle, true);
  CHECK(e.next().kind == step_kind::release);
  e.core.released();
  // A Query is skipped like the rest (PostgreSQL discards all up to Sync after an error).
  st = e.next();
  CHECK(st.kind == step_kind::drop);
  e.in.erase(0, st.length);
  e.in = empty('S');
  st = e.next();
  CHECK(st.kind == step_kind::answer_ready);
  e.in.erase(0, st.length);
  CHECK(e.next().kind == step_kind::need_more);
  CHECK_FALSE(e.core.attached());
}

TEST_CASE("session core: what PostgreSQL ignores with no server attached is dropped", "[routing][session_core]") {
  edge e;
  e.in = empty('c') + empty('H');
  CHECK(e.run().kind == step_kind::need_more);
  CHECK(e.in.empty());
  CHECK_FALSE(e.core.attached());
}

TEST_CASE("session core: malformed client messages are violations", "[routing][session_core]") {
  {
    session_core core(classifier(), {});
    const std::string in("Z\0\0\0\4", 5);  // not a frontend message type
    const auto st = core.next(in);
    CHECK(st.kind == step_kind::violation);
    CHECK_THAT(st.why, Catch::Contains("invalid frontend message type"));
  }
  {
    session_core core(classifier(), {});
    const std::string in("Q\0\0\0\2", 5);  // shorter than its own length field
    CHECK(core.next(in).kind == step_kind::violation);
  }
  {
    session_core core(classifier(), {});
    const std::string in("Q\0\0\0\7abc", 8);  // a Query whose text is not terminated
    CHECK(core.next(in).kind == step_kind::violation);
  }
}

TEST_CASE("session core: a transaction block lost with its server is answered until the client ends it",
          "[routing][session_core][lost_work]") {
  // The edge answered what was in flight; the client did not know its block was lost (T).
  edge e;
  e.begin_block();
  e.core.server_lost(protocol::tx_status::in_transaction, false);
  CHECK_FALSE(e.core.attached());
  // Its next statement is told the block was rolled back; the block is failed then.
  e.in = query("INSERT INTO t VALUES (1)");
  auto st = e.next();
  REQUIRE(st.kind == step_kind::answer_lost);
  CHECK(st.lost == routing::lost_answer::rolled_back);
  CHECK(st.ready == protocol::tx_status::failed);
  CHECK(st.length == e.in.size());
  e.in.clear();
  // Then as PostgreSQL answers in a failed block, extended protocol included.
  std::string batch;
  protocol::fe::serialize(protocol::fe::parse{"", "SELECT 1", {}}, batch);
  protocol::fe::serialize(protocol::fe::bind{"", "", std::string_view("\0\0\0\0\0\0", 6)}, batch);
  protocol::fe::serialize(protocol::fe::execute{"", 0}, batch);
  batch += empty('S');
  e.in = batch;
  st = e.next();
  REQUIRE(st.kind == step_kind::answer_lost);
  CHECK(st.lost == routing::lost_answer::aborted);
  e.in.erase(0, st.length);
  e.skipped_to_sync(2, protocol::tx_status::failed);
  // The ROLLBACK that ends it is answered here; what follows runs on a server again.
  e.in = query("ROLLBACK");
  st = e.next();
  REQUIRE(st.kind == step_kind::answer_lost);
  CHECK(st.lost == routing::lost_answer::rollback_done);
  CHECK(st.ready == protocol::tx_status::idle);
  e.in = query("SELECT 1");
  CHECK(e.next().kind == step_kind::attach);
}

TEST_CASE("session core: after a lost block, a COMMIT fails and an extended ROLLBACK is answered as PostgreSQL would",
          "[routing][session_core][lost_work]") {
  {
    edge e;
    e.core.server_lost(protocol::tx_status::in_transaction, false);
    e.in = query("COMMIT");
    const auto st = e.next();
    REQUIRE(st.kind == step_kind::answer_lost);
    CHECK(st.lost == routing::lost_answer::rolled_back);
    CHECK(st.ready == protocol::tx_status::idle);
    e.in = query("INSERT INTO t VALUES (1)");
    const auto next = e.next();
    REQUIRE(next.kind == step_kind::attach);
    CHECK(next.request.where == routing::target::primary);
  }
  {
    edge e;
    e.core.server_lost(protocol::tx_status::failed, false);
    std::string batch;
    protocol::fe::serialize(protocol::fe::parse{"", "ROLLBACK", {}}, batch);
    protocol::fe::serialize(protocol::fe::bind{"", "", std::string_view("\0\0\0\0\0\0", 6)}, batch);
    protocol::fe::serialize(protocol::fe::execute{"", 0}, batch);
    batch += empty('S');
    e.in = batch;
    // Parse, Bind, Execute each answered (ParseComplete, BindComplete, "ROLLBACK"), then the Sync.
    for (int i = 0; i < 3; ++i) {
      const auto st = e.next();
      REQUIRE(st.kind == step_kind::answer_lost);
      CHECK(st.lost == routing::lost_answer::rollback_done);
      e.in.erase(0, st.length);
    }
    const auto st = e.next();
    REQUIRE(st.kind == step_kind::answer_ready);
    CHECK(st.ready == protocol::tx_status::idle);
    e.in.erase(0, st.length);
    e.in = query("SELECT 1");
    CHECK(e.next().kind == step_kind::attach);
  }
  {
    // A batch that does more than end the block is not a ROLLBACK: 25P02, skipped to its Sync.
    edge e;
    e.core.server_lost(protocol::tx_status::failed, false);
    std::string batch;
    protocol::fe::serialize(protocol::fe::parse{"", "ROLLBACK", {}}, batch);
    protocol::fe::serialize(protocol::fe::parse{"a", "SELECT 1", {}}, batch);
    batch += empty('S');
    e.in = batch;
    auto st = e.next();
    REQUIRE(st.kind == step_kind::answer_lost);
    CHECK(st.lost == routing::lost_answer::aborted);
    e.in.erase(0, st.length);
    e.skipped_to_sync(1, protocol::tx_status::failed);
  }
}

TEST_CASE("session core: a batch cut by the loss of its server is skipped up to its Sync",
          "[routing][session_core][lost_work]") {
  edge e;
  std::string batch;
  protocol::fe::serialize(protocol::fe::parse{"", "INSERT INTO t VALUES (1)", {}}, batch);
  e.in = batch;
  auto st = e.next();
  REQUIRE(st.kind == step_kind::attach);
  e.attach(st);
  CHECK(e.run().kind == step_kind::need_more);
  CHECK(e.core.mid_batch());
  e.core.server_lost(protocol::tx_status::idle, true);
  e.in.clear();
  protocol::fe::serialize(protocol::fe::bind{"", "", std::string_view("\0\0\0\0\0\0", 6)}, e.in);
  protocol::fe::serialize(protocol::fe::execute{"", 0}, e.in);
  e.in += empty('S');
  e.skipped_to_sync(2, protocol::tx_status::idle);
  e.in = query("SELECT 1");
  CHECK(e.next().kind == step_kind::attach);
}
