// The client session: client messages on their way to the server: statements, prepared statements,
// Meridian's own settings, session parameters (see session_parts.hpp for how the session is split).
#include "proxy/session.hpp"
#include "proxy/session_parts.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "protocol/backend.hpp"
#include "protocol/codec.hpp"
#include "protocol/error.hpp"
#include "protocol/frontend.hpp"
#include "protocol/startup.hpp"
#include "proxy/client_auth.hpp"
#include "proxy/logging.hpp"
#include "proxy/params.hpp"
#include "proxy/pool.hpp"
#include "proxy/send_now.hpp"
#include "proxy/worker.hpp"
#include "routing/router.hpp"

namespace meridian::proxy {

using namespace session_parts;  // and its pr, fe_t, be_t, clock

namespace {

// A statement that makes the server raise `e`: the error then reaches the client in its place
// among the server's answers, and ends the transaction as PostgreSQL's own would.
std::string raise_statement(const setting_error& e) {
  // The message holds only safe characters (see check_meridian_setting); quotes doubled.
  std::string message;
  for (char c : e.message) {
    message += c;
    if (c == '\'') message += c;
  }
  return "DO $meridian$BEGIN RAISE EXCEPTION USING ERRCODE = '" + std::string(e.sqlstate) + "', MESSAGE = '" + message +
         "'; END$meridian$";
}

// RESET ALL or DISCARD ALL.
bool resets_all(const routing::classification& cls) {
  return std::find(cls.sets_parameters.begin(), cls.sets_parameters.end(), "*") != cls.sets_parameters.end();
}

std::string server_statement_name(std::string_view content, std::uint64_t generation) {
  char name[48];
  if (generation == 0) {
    std::snprintf(name, sizeof name, "mdn_%016zx", std::hash<std::string_view>{}(content));
  } else {
    std::snprintf(name, sizeof name, "mdn_%016zx_%llx", std::hash<std::string_view>{}(content),
                  static_cast<unsigned long long>(generation));
  }
  return name;
}

}  // namespace

bool session::forward_client_message(const pr::frame& m, const routing::classification* classified) {
  auto& sc = *attached_;
  auto& pl = sc.pipeline;
  auto fail = [&](const pr::protocol_error& e) {
    violation_ = e.message;
    return false;
  };
  auto raw = [&] { server_out_.append(m.body.data() - pr::typed_header_size, m.wire_size); };

  // After an error the server skips everything up to Sync; so does Meridian, without sending it.
  if (pl.discarding() && m.type != fe_t::sync) {
    if (auto v = pr::fe::validate(m.type, m.body); !v) return fail(v.error());
    return true;
  }

  switch (m.type) {
    case fe_t::query: {
      auto q = pr::fe::parse_query(m.body);
      if (!q) return fail(q.error());
      time_batch(q->sql);
      const auto& cls = *classified;  // the session core classified it (step::statement)
      if (cls.sets_meridian || cls.shows_meridian) {
        if (auto instead = meridian_statement(q->sql, cls); !instead.empty()) {
          pr::fe::serialize(pr::fe::query{instead}, server_out_);
          pl.sent(fe_t::query);
          break;
        }
      }
      if (cls.deallocates) {
        if (auto instead = deallocate_instead(sc, q->sql)) {
          pr::fe::serialize(pr::fe::query{*instead}, server_out_);
          pl.sent(fe_t::query);
          break;
        }
      }
      note_statement(sc, cls.where);
      note_unseen_state(sc, cls);
      note_catalog_change(sc, cls);
      if (cls.makes_primary_only) learn_primary_only(q->sql);
      raw();
      if (!cls.sets_parameters.empty()) note_settings(sc, cls);
      if (resets_all(cls)) {
        sent_resetting_all(sc, fe_t::query);
      } else {
        pl.sent(fe_t::query);
      }
      if (!deferred_shows_.empty()) flush_shows(sc, cls.tx);
      if (cls.copy_in) {
        capture_after_copy_ = tx_wrote_;  // the position is asked for once the COPY data is sent
      } else {
        capture_commit_position(sc);
      }
      break;
    }
    case fe_t::parse: {
      auto p = pr::fe::parse_parse(m.body);
      if (!p) return fail(p.error());
      time_batch(p->sql);
      sc.batch_open = true;
      const auto& cls = *classified;
      if (cls.sets_meridian || cls.shows_meridian) {
        if (auto instead = meridian_statement(p->sql, cls); !instead.empty()) {
          pr::fe::serialize(pr::fe::parse{p->statement, instead, {}}, server_out_);
          pl.sent(fe_t::parse);
          break;
        }
      }
      if (cls.copy_in) batch_copy_in_ = true;
      note_unseen_state(sc, cls);
      note_catalog_change(sc, cls);
      if (cls.makes_primary_only) learn_primary_only(p->sql);
      // A SET through the extended protocol (JDBC sends its own at start-up) is followed up
      // after the batch's Sync.
      if (!cls.sets_parameters.empty()) note_settings(sc, cls);
      if (resets_all(cls)) batch_resets_all_ = true;
      if (cls.tx != routing::tx_effect::none) batch_tx_ = cls.tx;
      if (p->statement.empty()) {
        unnamed_class_ = cls.where;
        // (An unnamed statement runs at once, as psycopg's DEALLOCATE of its cache's statements
        // does; a named one that deallocates when executed later goes to the server as it is.)
        std::optional<std::string> instead;
        if (cls.deallocates) instead = deallocate_instead(sc, p->sql);
        if (instead) {
          pr::fe::serialize(pr::fe::parse{p->statement, *instead, {}}, server_out_);
        } else {
          raw();
        }
        pl.sent(fe_t::parse);
        break;
      }
      if (statements_.find(p->statement) != statements_.end()) {
        // PostgreSQL refuses a name in use (42P05) and keeps the statement it names. The server
        // is made to fail the batch the same way (its implicit transaction, the rest up to the
        // Sync) with a Parse that cannot parse, whose error is then replaced with PostgreSQL's.
        pr::fe::serialize(pr::fe::parse{"mdn_name_in_use", "meridian: the name is in use", {}}, server_out_);
        pl.sent(pr::pending_request{pr::request_kind::parse, false, false, 0, duplicate_parse_tag});
        duplicate_names_.emplace_back(p->statement);
        break;
      }
      // Statements are renamed by content, so every client preparing the same text shares one
      // server-side statement, and a name never collides with another client's.
      auto content = m.body.substr(p->statement.size() + 1);
      auto& st = statements_[std::string(p->statement)];
      st.cls = cls;
      st.hint = routing::leading_hint(p->sql);
      st.server_name = server_statement_name(content, worker_.shared().statement_generation.load(std::memory_order_relaxed));
      st.parse_message.clear();
      {
        pr::message_writer w(st.parse_message, fe_t::parse);
        w.cstring(st.server_name).bytes(content);
      }
      if (sc.statements.touch(st.server_name)) {
        pl.sent(pr::pending_request{pr::request_kind::parse, false, true});  // answered by Meridian
      } else {
        prepare_on(sc, st, false);
      }
      break;
    }
    case fe_t::bind: {
      auto b = pr::fe::parse_bind(m.body);
      if (!b) return fail(b.error());
      time_batch({});  // a prepared statement run again: timed, its text not at hand
      sc.batch_open = true;
      auto it = b->statement.empty() ? statements_.end() : statements_.find(b->statement);
      note_statement(sc, it != statements_.end() ? it->second.cls.where : unnamed_class_);
      if (it != statements_.end()) note_unseen_state(sc, it->second.cls);
      if (it == statements_.end()) {
        raw();  // unnamed, or unknown: the server reports 26000 itself
      } else {
        ensure_prepared(sc, it->second);
        pr::fe::serialize(pr::fe::bind{b->portal, it->second.server_name, b->tail}, server_out_);
      }
      pl.sent(fe_t::bind);
      break;
    }
    case fe_t::describe: {
      auto d = pr::fe::parse_describe(m.body);
      if (!d) return fail(d.error());
      sc.batch_open = true;
      auto it = (d->kind == pr::fe::target_kind::statement && !d->name.empty())
                    ? statements_.find(d->name)
                    : statements_.end();
      if (it == statements_.end()) {
        raw();
      } else {
        ensure_prepared(sc, it->second);
        pr::fe::serialize(pr::fe::describe{pr::fe::target_kind::statement, it->second.server_name}, server_out_);
      }
      pl.sent(fe_t::describe, static_cast<char>(d->kind));
      break;
    }
    case fe_t::close: {
      auto c = pr::fe::parse_close(m.body);
      if (!c) return fail(c.error());
      sc.batch_open = true;
      if (c->kind == pr::fe::target_kind::statement && !c->name.empty()) {
        // The server-side statement may serve other clients; only this client's name goes away.
        statements_.erase(std::string(c->name));
        pl.sent(pr::pending_request{pr::request_kind::close, false, true});
      } else {
        raw();
        pl.sent(fe_t::close);
      }
      break;
    }
    case fe_t::execute: {
      auto e = pr::fe::parse_execute(m.body);
      if (!e) return fail(e.error());
      sc.batch_open = true;
      raw();
      pl.sent(fe_t::execute);
      break;
    }
    case fe_t::sync:
      if (auto v = pr::fe::parse_empty(m.body, "Sync"); !v) return fail(v.error());
      raw();
      if (batch_resets_all_) {
        // RESET ALL or DISCARD ALL in the batch: the server reports its defaults before the
        // Sync's ReadyForQuery.
        batch_resets_all_ = false;
        sent_resetting_all(sc, fe_t::sync);
      } else {
        pl.sent(fe_t::sync);
      }
      sc.batch_open = false;
      if (!deferred_shows_.empty()) flush_shows(sc, batch_tx_);
      batch_tx_ = routing::tx_effect::none;
      // A batch that started COPY FROM STDIN ends at the Sync after its data: ask then.
      if (!batch_copy_in_) capture_commit_position(sc);
      batch_copy_in_ = false;
      break;
    case fe_t::flush:
      if (auto v = pr::fe::parse_empty(m.body, "Flush"); !v) return fail(v.error());
      sc.batch_open = true;
      raw();
      break;
    case fe_t::function_call: {
      auto f = pr::fe::parse_function_call(m.body);
      if (!f) return fail(f.error());
      raw();
      pl.sent(fe_t::function_call);
      break;
    }
    case fe_t::copy_data:
      raw();
      break;
    case fe_t::copy_done:
    case fe_t::copy_fail: {
      auto v = pr::fe::validate(m.type, m.body);
      if (!v) return fail(v.error());
      raw();
      pl.sent(m.type);  // where the copy-in ends: Syncs before it are ignored by the server
      if (capture_after_copy_) {
        capture_after_copy_ = false;
        capture_commit_position(sc);
      }
      break;
    }
    default:
      violation_ = "invalid frontend message type " + std::to_string(static_cast<unsigned char>(m.type));
      return false;
  }
  if (sc.pipeline.local_at_head()) answer_local_requests(sc, client_out_);
  return true;
}

void session::note_unseen_state(server_connection& sc, const routing::classification& cls) {
  if (cls.may_leave_state && worker_.cfg().reset_after_functions) sc.unseen_state = true;
}

void session::note_catalog_change(const server_connection& sc, const routing::classification& cls) {
  // A prepared statement must not outlive the objects it was planned with: PostgreSQL re-plans
  // one whose relations changed, but one whose parameter has a type that was dropped fails
  // ("cache lookup failed for type") however often it is run. Drivers prepare such statements
  // anew under new names (psycopg after a DROP, an ALTER or a rollback); Meridian's names come
  // from the text, so they would find the old one. Statements prepared after these get new names.
  auto& generation = worker_.shared().statement_generation;
  const bool in_block = sc.tx != pr::tx_status::idle || cls.tx == routing::tx_effect::begin ||
                        cls.tx == routing::tx_effect::begin_read_only;
  if (cls.invalidates_statements) generation.fetch_add(1, std::memory_order_relaxed);
  if (cls.ddl && in_block) tx_made_objects_ = true;
  if (cls.tx == routing::tx_effect::end) {
    // A rollback (or the COMMIT of a failed transaction) takes back the objects it made.
    if (tx_made_objects_ && (!cls.commits || sc.tx == pr::tx_status::failed))
      generation.fetch_add(1, std::memory_order_relaxed);
    tx_made_objects_ = false;
  }
}

void session::learn_primary_only(std::string_view sql) {
  auto made = routing::primary_only_relations_made(sql, *routing_state().cache.functions());
  if (!made.empty()) worker_.learn_primary_only(database_, made);
}

void session::note_settings(server_connection& sc, const routing::classification& cls) {
  for (const auto& name : cls.sets_parameters) {
    if (name == "*") {
      // RESET ALL / DISCARD ALL: back to what the client started with. (DISCARD ALL also
      // unpins the session: the session core sees to it.)
      wanted_ = startup_params_;
      meridian_settings_ = startup_meridian_settings_;
      sc.params = sc.baseline;
      sc.synced = nullptr;
      deferred_shows_.clear();
      continue;
    }
    if (is_valid_parameter_name(name) &&
        std::find(deferred_shows_.begin(), deferred_shows_.end(), name) == deferred_shows_.end())
      deferred_shows_.push_back(name);
  }
}

void session::sent_resetting_all(server_connection& sc, char type) {
  // What PostgreSQL's RESET ALL returns a session to is its start-up values; the server
  // connection's own are the pool's. They are set again right behind the client's message,
  // whose ReadyForQuery waits for it; the parameters it reports are the ones the client sees
  // (the server's defaults reported in answer to the client's message, tagged, are not).
  const auto sql = params_to_sync(sc);
  sc.pipeline.sent(type, 'S', false, sql.empty() ? 0 : reset_all_tag);
  if (sql.empty()) return;
  pr::fe::serialize(pr::fe::query{sql}, server_out_);
  sc.pipeline.sent(pr::pending_request{pr::request_kind::query, true, false, 0, restore_tag});
  note_synced(sc);
}

void session::flush_shows(server_connection& sc, routing::tx_effect tx) {
  if (deferred_shows_.empty()) return;
  const bool begins = tx == routing::tx_effect::begin || tx == routing::tx_effect::begin_read_only;
  if (begins || (tx == routing::tx_effect::none && sc.tx != pr::tx_status::idle)) return;  // not over yet
  for (const auto& name : deferred_shows_) {
    pr::fe::serialize(pr::fe::query{"SHOW " + name}, server_out_);
    sc.pipeline.sent(
        pr::pending_request{pr::request_kind::query, true, false, 0, static_cast<std::uint32_t>(show_names_.size())});
    show_names_.push_back(name);
  }
  deferred_shows_.clear();
}

void session::note_statement(server_connection& sc, routing::target where) {
  worker_.meter().statement(sc.node.value, where == routing::target::any);
  if (where == routing::target::primary && !on_replica_) tx_wrote_ = true;
}

std::string session::meridian_statement(std::string_view sql, const routing::classification& cls) const {
  if (cls.shows_meridian) {
    if (auto name = routing::meridian_show(sql)) {
      if (auto bad = check_meridian_setting(*name, std::nullopt)) return raise_statement(*bad);
      // The value in force, whether it came from start-up, SET or the configuration.
      const auto level = consistency();
      std::string_view value = routing::to_string(level);
      if (*name == "meridian.routing") value = level == routing::consistency::primary ? "primary" : "split";
      return "SELECT '" + std::string(value) + "'::text AS \"" + *name + "\"";
    }
  }
  if (!cls.sets_meridian) return {};
  for (const auto& a : routing::meridian_settings(sql)) {
    if (auto bad = check_meridian_setting(a.name, a.value)) return raise_statement(*bad);
  }
  return {};
}

std::optional<std::string> session::deallocate_instead(server_connection& sc, std::string_view sql) {
  auto it = statements_.find(routing::deallocated_name(sql));
  if (it == statements_.end()) return std::nullopt;  // SQL-level (pinned), or unknown: the server answers
  // One of the client's protocol-level statements: on the server it has another name and may
  // serve other clients. The client's name goes; the server deallocates a throwaway statement
  // prepared just before, so the client gets PostgreSQL's own answer.
  statements_.erase(it);
  // Named after this session, so that one left behind by a failed batch never stands in another
  // session's way.
  const std::string throwaway = "meridian_deallocate_" + std::to_string(id_) + "_" + std::to_string(++deallocations_);
  pr::fe::serialize(pr::fe::parse{throwaway, "SELECT 1", {}}, server_out_);
  sc.pipeline.sent(pr::pending_request{pr::request_kind::parse, true, false});
  sc.parses_in_flight.push_back(throwaway);
  return "DEALLOCATE " + throwaway;
}

void session::ensure_prepared(server_connection& sc, const prepared_statement& st) {
  if (!sc.statements.touch(st.server_name)) prepare_on(sc, st, true);
}

void session::prepare_on(server_connection& sc, const prepared_statement& st, bool synthetic) {
  if (auto evicted = sc.statements.insert(st.server_name)) {
    pr::fe::serialize(pr::fe::close{pr::fe::target_kind::statement, *evicted}, server_out_);
    sc.pipeline.sent(pr::pending_request{pr::request_kind::close, true, false});
  }
  server_out_ += st.parse_message;
  sc.pipeline.sent(pr::pending_request{pr::request_kind::parse, synthetic, false});
  sc.parses_in_flight.push_back(st.server_name);
}

void session::answer_local_requests(server_connection& sc, std::string& out) {
  while (auto r = sc.pipeline.take_local()) {
    pr::be::serialize_empty(r->kind == pr::request_kind::parse ? be_t::parse_complete : be_t::close_complete, out);
  }
}

database_routing& session::routing_state() {
  if (!database_routing_) database_routing_ = &worker_.database(database_);
  return *database_routing_;
}

const routing::classification& session::classify_statement(std::string_view sql) {
  auto& cache = routing_state().cache;
  // A statement like one of the last few, but for its literals, is classified alike (see
  // recent_shapes).
  if (const auto* known = shapes_.find(sql, cache.generation())) {
    worker_.meter().cache_hits.add(1);
    return *known;
  }
  const auto misses = cache.misses();
  auto c = cache.get(sql);
  (cache.misses() == misses ? worker_.meter().cache_hits : worker_.meter().cache_misses).add(1);
  if (const auto* remembered = shapes_.remember(sql, cache.literals(), c, cache.generation())) return *remembered;
  if (!unremembered_) unremembered_ = std::make_unique<routing::classification>();
  *unremembered_ = std::move(c);
  return *unremembered_;
}

std::string session::params_to_sync(server_connection& sc) const {
  if (sc.synced == wanted_) return {};
  auto sql = parameter_sync_sql(*wanted_, sc.params, sc.baseline);
  if (sql.empty()) sc.synced = wanted_;
  return sql;
}

awaitable<std::optional<server_error>> session::sync_params(server_connection& sc) {
  const auto sql = params_to_sync(sc);
  if (sql.empty()) co_return std::nullopt;
  auto r = co_await sc.run_internal_query(sql, worker_.cfg().max_message_bytes);
  if (!r) co_return r.error();
  note_synced(sc);
  co_return std::nullopt;
}

void session::note_synced(server_connection& sc) const {
  // Parameters the server does not report: record what was set or reset.
  for (const auto& [k, v] : *wanted_) sc.params[k] = v;
  std::erase_if(sc.params, [&](const auto& kv) { return !wanted_->count(kv.first) && !sc.baseline.count(kv.first); });
  sc.synced = wanted_;
}

}  // namespace meridian::proxy
