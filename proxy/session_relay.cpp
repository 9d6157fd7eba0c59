// The client session: the attached server's answers, relayed to the client, and the server
// connection given back or lost (see session_parts.hpp for how the session is split).
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

bool session::releasable(const server_connection& sc) const {
  return mode() == pool_mode::transaction && !core_.holds_server() && sc.quiescent() && !server_writing_ &&
         server_out_.empty();
}

// The attached server's answers are relayed by plain completion handlers, one read at a time:
// this runs for every answer, and a coroutine resumed per read costs more than the relaying.
// The read is the connection's own pending one (server_connection::watch), which this session
// takes while attached: one started while the connection sat idle in its pool carries the
// answer to the first query, so relaying starts no read (and no system call) per transaction.
// What has to wait (a client that cannot take the output yet, a connection to reset, a server
// lost) continues in a coroutine of its own.
void session::read_server(server_conn_ptr sc) {
  if (ended_ || attached_ != sc) {
    // The session ended, or the connection was let go: give it back (or close it).
    if (!finish_server_now(sc, sc->quiescent()))
      asio::co_spawn(client_.get_executor(), reset_later(shared_from_this(), std::move(sc)), asio::detached);
    return;
  }
  if (sc->reader.get() != static_cast<server_reader*>(this)) sc->reader = shared_from_this();
  sc->watch();
}

void session::on_server_data(server_conn_ptr sc, error_code ec, std::size_t n) {
  if (ec) {
    if (ended_) return read_server(std::move(sc));  // woken by the session's end: let it go
    lose_server(std::move(sc), ec == asio::error::eof ? std::string("server closed the connection") : ec.message());
    return;
  }
  chunk_result chunk;
  try {
    sc->in.commit(n);
    chunk = process_server_chunk(*sc);
  } catch (const std::exception& e) {
    lose_server(std::move(sc), std::string("internal error relaying its answer: ") + e.what());
    return;
  }
  if (tracing())
    spdlog::trace("[c{}] server chunk of {} bytes, {} segment(s), tx {}, pipeline {}", id_, n, segments_.size(),
                  static_cast<char>(sc->tx), sc->pipeline.empty() ? "empty" : "busy");
  if (chunk.broken) return lose_server(std::move(sc), chunk.broken);
  bool written = true;
  if (!segments_.empty()) {
    // Something of the answer reaches the client: what was sent can no longer run again.
    retry_.ok = false;
    retry_.times = 0;
    auto data = sc->in.readable();
    buffers_.clear();
    for (const auto& s : segments_)
      buffers_.emplace_back((s.generated ? generated_.data() : data.data()) + s.offset, s.length);
    const auto w = write_client_now(buffers_);
    if (w == quick_write::wait) {
      asio::co_spawn(client_.get_executor(), write_then_relay(shared_from_this(), std::move(sc), chunk), asio::detached);
      return;
    }
    written = w == quick_write::done;
  }
  relayed(std::move(sc), chunk, written);
}

awaitable<void> session::write_then_relay(std::shared_ptr<session> self, server_conn_ptr sc, chunk_result chunk) {
  const bool written = co_await self->write_client(self->buffers_);
  self->relayed(std::move(sc), chunk, written);
}

void session::relayed(server_conn_ptr sc, const chunk_result& chunk, bool written) {
  sc->in.consume(chunk.consumed);
  if (!written) {
    ended_ = true;  // the client is gone
    return read_server(std::move(sc));
  }
  if (!server_going_.empty()) {
    // The server said it is going away: its connection is lost now, not at its close.
    auto why = std::move(server_going_);
    server_going_.clear();
    if (attached_ == sc) return lose_server(std::move(sc), std::move(why));
  }
  sc->in.reserve(chunk.need);
  if (attached_ == sc) arm_idle_in_transaction(*sc);
  if (sc->in.capacity() > (1u << 20) && sc->in.readable().size() < 16384) sc->in.shrink(16384);
  if (attached_ == sc && releasable(*sc)) {
    release_attached();
  } else {
    read_server(std::move(sc));
  }
  if (waiting_server_) {
    // The client's next message waited for these answers.
    waiting_server_ = false;
    if (tls_)
      spawn_serve(false);
    else
      continue_turn();
  }
}

routing::session_core::server_state session::server_state() const {
  if (!attached_) return {};
  return {!attached_->pipeline.empty() || attached_->passthrough > 0, attached_->pipeline.copying_in()};
}

void session::detach() {
  attached_.reset();
  core_.released();
}

void session::release_attached() {
  auto sc = attached_;
  detach();
  show_names_.clear();
  if (sc->unseen_state) {
    // Reset on the side: this client goes on meanwhile, on another connection if it needs one.
    // Nothing the connection hears until then comes to this session.
    sc->reader.reset();
    sc->stop_watching();
    asio::co_spawn(client_.get_executor(), reset_later(shared_from_this(), std::move(sc)), asio::detached);
  } else {
    sc->owner->release(sc);
  }
  if (shutdown_requested_) {
    // The client is between transactions: wake its reader so it can leave.
    error_code ignored;
    client_.cancel(ignored);
  }
}

void session::lose_server(server_conn_ptr sc, std::string why) {
  asio::co_spawn(client_.get_executor(), lose_server_task(shared_from_this(), std::move(sc), std::move(why)), asio::detached);
}

awaitable<void> session::lose_server_task(std::shared_ptr<session> self, server_conn_ptr sc, std::string why) {
  co_await self->on_server_lost(sc, why);
}

awaitable<void> session::reset_later(std::shared_ptr<session> self, server_conn_ptr sc) {
  co_await self->reset_and_release(std::move(sc));
}

session::chunk_result session::process_server_chunk(server_connection& sc) {
  chunk_result result;
  segments_.clear();
  generated_.clear();
  const auto data = sc.in.readable();
  std::size_t pos = 0;
  std::size_t run_start = 0;
  auto close_run = [&] {
    if (pos > run_start) segments_.push_back({false, run_start, pos - run_start});
    run_start = pos;
  };
  auto emit_generated = [&](std::size_t from) {
    if (generated_.size() > from) {
      close_run();
      segments_.push_back({true, from, generated_.size() - from});
    }
  };
  const auto max_message = worker_.cfg().max_message_bytes;
  // Server messages may be larger than what we accept from clients (big rows): only those we
  // must inspect are held whole; rows and COPY data stream through.
  const std::size_t max_server_message = std::size_t{1} << 30;

  while (pos < data.size()) {
    if (sc.passthrough > 0) {
      auto take = std::min(sc.passthrough, data.size() - pos);
      pos += take;
      sc.passthrough -= take;
      continue;
    }
    auto r = pr::next_frame(data.substr(pos), max_server_message);
    if (r.status == pr::frame_status::invalid) {
      result.broken = "invalid message from server";
      return result;
    }
    if (r.status == pr::frame_status::need_more) {
      const char type = data.size() - pos >= pr::typed_header_size ? data[pos] : '\0';
      if ((type == be_t::data_row || type == be_t::copy_data) && r.needed > 0) {
        auto v = sc.pipeline.received(type);
        if (v.unexpected) {
          result.broken = "unexpected message from server";
          return result;
        }
        if (v.forward) {
          sc.passthrough = r.needed - (data.size() - pos);
          pos = data.size();
          continue;
        }
      }
      if (r.needed > max_message && type != be_t::data_row && type != be_t::copy_data) {
        result.broken = "server message exceeds the maximum message size";
        return result;
      }
      result.need = r.needed;
      break;
    }
    const auto& m = r.msg;
    const auto generated_before = generated_.size();
    const auto answering = sc.pipeline.front();
    auto v = sc.pipeline.received(m.type);
    if (v.unexpected) {
      result.broken = "unexpected message from server";
      return result;
    }
    if (answering && answering->synthetic && answering->kind == pr::request_kind::query) {
      if (answering->tag == position_tag) {
        capture_position(m);
      } else if (answering->tag < show_names_.size()) {
        capture_show(sc, m, answering->tag);
      }
    }
    bool forward = v.forward;
    switch (m.type) {
      case be_t::ready_for_query: {
        auto rfq = pr::be::parse_ready_for_query(m.body);
        if (!rfq) {
          result.broken = "invalid ReadyForQuery from server";
          return result;
        }
        sc.tx = rfq->status;
        // The session core learns the transaction's status, and when its own Sync is answered.
        if (v.forward) {
          core_.server_ready(rfq->status);
        } else if (answering && answering->kind == pr::request_kind::sync && answering->tag == core_sync_tag) {
          core_.server_ready(rfq->status, true);
        }
        if (forward) batch_done(sc);
        // The client's ReadyForQuery waits for the queries Meridian sent after its batch (the
        // SHOW of a parameter it set, the position of its commit): its next statement, which
        // may follow at once, is then routed knowing their answers.
        auto next = sc.pipeline.front();
        const bool followed = next && next->synthetic && next->kind == pr::request_kind::query;
        if (forward && followed) {
          held_ready_.assign(m.body.data() - pr::typed_header_size, m.wire_size);
          forward = false;
        } else if (!forward && !followed && !held_ready_.empty()) {
          generated_ += held_ready_;
          held_ready_.clear();
        }
        break;
      }
      case be_t::parameter_status: {
        auto ps = pr::be::parse_parameter_status(m.body);
        if (!ps) {
          result.broken = "invalid ParameterStatus from server";
          return result;
        }
        auto name = lower(ps->name);
        const bool tracked = is_tracked_parameter(name);
        if (tracked && answering && answering->tag == reset_all_tag && startup_params_->count(name)) {
          // RESET ALL, DISCARD ALL: the server reports its default, but the client's session is
          // back at its start-up value, which the synthetic query behind sets again and reports.
          forward = false;
          break;
        }
        // After RESET ALL, the client's start-up values as the server reports them.
        if (tracked && answering && answering->synthetic && answering->tag == restore_tag) forward = true;
        sc.params[name] = std::string(ps->value);
        // The connection moved: in step with the client again only if the client follows.
        sc.synced = nullptr;
        if (tracked) {
          if (forward) {
            wanted_ = worker_.parameter_sets().with(wanted_, name, std::string(ps->value));
            sc.synced = wanted_;
          }
        } else {
          if (is_tainting_parameter(name)) sc.tainted = true;
          forward = false;  // server-level values (in_hot_standby, server_version) stay as presented
        }
        break;
      }
      case be_t::parse_complete:
        if (!sc.parses_in_flight.empty()) sc.parses_in_flight.pop_front();
        break;
      case be_t::command_complete: {
        // These drop every prepared statement on the server, and the client's too.
        auto tag = m.body.substr(0, m.body.empty() ? 0 : m.body.size() - 1);
        if (tag == "DEALLOCATE ALL" || tag == "DISCARD ALL") {
          sc.statements.clear();
          statements_.clear();
        }
        break;
      }
      case be_t::error_response: {
        if (v.forward && !v.unsolicited) core_.server_error();
        if (answering && answering->tag == duplicate_parse_tag) [[unlikely]] {
          // The Parse sent for a client's name in use failed as meant: PostgreSQL's error instead.
          forward = false;
          std::string name;
          if (!duplicate_names_.empty()) {
            name = std::move(duplicate_names_.front());
            duplicate_names_.pop_front();
          }
          pr::append_error(generated_, pr::severity::error, "42P05", "prepared statement \"" + name + "\" already exists");
          worker_.meter().errors.count(error_meter::origin::meridian, "42P05");
          break;
        }
        auto fields = pr::be::parse_error_fields(m.body);
        const auto severity = fields ? fields->get('V') : std::string_view{};
        const auto code = fields ? fields->get('C') : std::string_view{};
        if ((severity == "FATAL" || severity == "PANIC") && (code == "57P01" || code == "57P02" || code == "57P03") &&
            mode() == pool_mode::transaction && !core_.pinned()) {
          // The server is going away (shut down, crashed, this backend terminated). Under
          // transaction pooling the client's connection is Meridian's: it goes on, and its work
          // is answered as lost (on_server_lost) once what came before it was relayed.
          sc.tainted = true;
          forward = false;
          server_going_ = fields->get('M');
          spdlog::info("[c{}] server {} is going away: {}", id_, sc.node.value, server_going_);
        } else if (severity == "FATAL" || severity == "PANIC") {
          // The backend ends this client's session (its state is the server's, or the server
          // says why it ends it): the client gets the server's own words, whatever was asked,
          // and nothing of Meridian's after them.
          sc.tainted = true;
          forward = true;
          server_ended_session_ = true;
          spdlog::info("[c{}] server {} ended the session: {}", id_, sc.node.value, fields->get('M'));
        } else if (fields && fields->get('C') == "0A000" && fields->get('R') == "get_relation_info") {
          // A replica cannot read an unlogged relation (or a view over one) that the catalog
          // Meridian read did not show: made since, elsewhere. Read it again, so that the
          // next read of it goes to the primary. (This one's error is the server's.)
          worker_.catalog_changed(database_);
        } else if (v.unsolicited) {
          // Nothing was asked and it is not the end: not the client's business.
          sc.tainted = true;
          forward = false;
          spdlog::warn("[c{}] server {} sent an unsolicited error: {}", id_, sc.node.value,
                       fields ? std::string(fields->get('M')) : std::string("(malformed)"));
        }
        break;
      }
      case be_t::notice_response: {
        // An immediate shutdown or a crash of another backend: the server warns that it ends
        // this connection, then closes it. Under transaction pooling that is a lost server (as
        // a FATAL saying the same, above), not the client's business.
        auto fields = pr::be::parse_error_fields(m.body);
        const auto code = fields ? fields->get('C') : std::string_view{};
        if ((code == "57P01" || code == "57P02") && mode() == pool_mode::transaction && !core_.pinned()) {
          sc.tainted = true;
          forward = false;
          server_going_ = fields->get('M');
          spdlog::info("[c{}] server {} is going away: {}", id_, sc.node.value, server_going_);
        }
        break;
      }
      default:
        break;
    }
    if (forward && m.type == be_t::error_response) {
      auto fields = pr::be::parse_error_fields(m.body);
      if (fields) worker_.meter().errors.count(error_meter::origin::server, fields->get('C'));
    }
    if (!sc.pipeline.discarded().empty()) reconcile_discarded(sc);
    if (forward) {
      pos += m.wire_size;
    } else {
      close_run();
      pos += m.wire_size;
      run_start = pos;
    }
    if (sc.pipeline.local_at_head()) answer_local_requests(sc, generated_);
    emit_generated(generated_before);
  }
  close_run();
  result.consumed = pos;
  return result;
}

void session::capture_show(server_connection& sc, const pr::frame& m, std::uint32_t tag) {
  if (m.type == be_t::data_row) {
    auto row = pr::be::parse_data_row(m.body);
    if (row && !row->columns.empty() && row->columns[0]) show_value_ = std::string(*row->columns[0]);
  } else if (m.type == be_t::error_response) {
    show_failed_ = true;
  } else if (m.type == be_t::ready_for_query) {
    if (!show_failed_ && show_names_[tag].rfind("meridian.", 0) == 0) {
      // Meridian's own: kept apart, never replayed to servers.
      meridian_settings_[show_names_[tag]] = show_value_;
    } else if (!show_failed_) {
      const auto& name = show_names_[tag];
      wanted_ = worker_.parameter_sets().with(wanted_, name, show_value_);
      sc.params[name] = show_value_;
      sc.synced = wanted_;
    }
    show_value_.clear();
    show_failed_ = false;
  }
}

void session::reconcile_discarded(server_connection& sc) {
  for (const auto& d : sc.pipeline.discarded()) {
    if (d.kind == pr::request_kind::parse && !d.local && !sc.parses_in_flight.empty()) {
      sc.statements.erase(sc.parses_in_flight.front());
      sc.parses_in_flight.pop_front();
    }
  }
  sc.pipeline.discarded().clear();
}

bool session::finish_server_now(const server_conn_ptr& sc, bool healthy) {
  if (attached_ == sc) detach();
  auto* p = sc->owner;
  if (!healthy || sc->tainted) {
    p->discard(sc);
    return true;
  }
  if (mode() == pool_mode::session || core_.pinned() || sc->unseen_state) return false;  // reset first: reset_and_release
  p->release(sc);
  return true;
}

awaitable<void> session::reset_and_release(server_conn_ptr sc) {
  // A connection that held a session's state goes to the next client only after a reset.
  auto* p = sc->owner;
  auto r = co_await sc->run_internal_query(worker_.cfg().reset_query, worker_.cfg().max_message_bytes);
  if (!r || sc->tx != pr::tx_status::idle) {
    p->discard(sc);
    co_return;
  }
  sc->statements.clear();
  sc->params = sc->baseline;
  sc->synced = nullptr;
  sc->unseen_state = false;
  p->release(sc);
}

awaitable<void> session::on_server_lost(server_conn_ptr sc, const std::string& why) {
  const bool busy = !sc->quiescent();
  const auto& node_name = worker_.topology().at(sc->node).name;
  if (server_ended_session_) {
    // The server said why in a FATAL the client has; PostgreSQL closes the connection after it.
    if (attached_ == sc) detach();
    sc->owner->discard(sc);
    co_await close_client_gracefully();
    co_return;
  }
  if (attached_ == sc && mode() == pool_mode::transaction && !core_.pinned()) {
    // The client's connection is Meridian's, and its session state (parameters, prepared
    // statements) is replayed on any server: it goes on. What was in flight is answered.
    std::string out;
    const bool answered = answer_lost_work(*sc, "server connection to \"" + node_name + "\" was lost (" + why + ")", out);
    sc->owner->discard(sc);
    if (!out.empty() && !co_await write_client(out)) co_return;
    if (waiting_server_ || !answered) {
      // The client's next message waited for the lost server's answers, or the unit in flight
      // runs again: the turn goes on (a plaintext client's wait, still pending, then serves the
      // turn after).
      waiting_server_ = false;
      if (tls_)
        spawn_serve(false);
      else
        continue_turn();
    }
    co_return;
  }
  if (attached_ == sc) detach();
  sc->owner->discard(sc);
  if (!busy && mode() == pool_mode::transaction) {
    spdlog::info("[c{}] idle server connection to {} lost: {}", id_, node_name, why);
    co_return;
  }
  // A pinned or session-pooled session: its server-side state (temporary tables, locks, the
  // server's own session) died with the connection; PostgreSQL would have closed the client's
  // connection too.
  spdlog::warn("[c{}] server connection to {} lost mid-transaction: {}", id_, node_name, why);
  const std::string message = "server connection to \"" + node_name + "\" was lost: " + why;
  co_await fatal(pr::sqlstate::connection_failure, message);
}

bool session::answer_lost_work(server_connection& sc, const std::string& why, std::string& out) {
  using routing::lost_answer;
  lost_because_ = why;
  // A read alone in flight, nothing of its answer sent: it runs again, routed anew, when the
  // session's turn can be taken up (it waits for the server, or for a plaintext client).
  const bool resumable = waiting_server_ || (!tls_ && client_wait_.pending());
  if (retry_.ok && retry_.times < retry_state::max_times && resumable && held_ready_.empty() &&
      sc.tx == pr::tx_status::idle) {
    std::size_t units = 0;
    for (auto* r = sc.pipeline.unanswered_begin(); r != sc.pipeline.unanswered_end(); ++r)
      if (r->ends_client_unit()) ++units;
    if (units + (core_.mid_batch() ? 1 : 0) == 1) {
      ++retry_.times;
      retry_.ok = false;
      spdlog::info("[c{}] {}: its read runs again elsewhere ({} of at most {})", id_, why, retry_.times,
                   retry_state::max_times);
      in_.unread(retry_.bytes);
      retry_.bytes.clear();
      for (const auto& name : retry_.named) statements_.erase(name);
      retry_.named.clear();
      duplicate_names_.clear();
      worker_.meter().reads_retried.add(1);
      attached_.reset();
      core_.server_lost(pr::tx_status::idle, false);
      if (!server_writing_) server_out_.clear();
      show_names_.clear();
      batch_resets_all_ = false;
      batch_tx_ = routing::tx_effect::none;
      batch_timed_ = false;
      return false;
    }
  }
  retry_.ok = false;
  // A ReadyForQuery held for Meridian's own follow-up queries: its unit was answered.
  if (!held_ready_.empty()) {
    out += held_ready_;
    held_ready_.clear();
  }
  auto& pl = sc.pipeline;
  // Nothing sent to a replica wrote.
  const auto kept = static_cast<std::uint8_t>(core_.on_replica() ? ~routing::unit_effect::writes : 0xff);
  auto status = sc.tx;  // what the client was last told, before the first unit not answered
  std::size_t units = 0;
  for (auto* r = pl.unanswered_begin(); r != pl.unanswered_end(); ++r) {
    if (!r->ends_client_unit()) continue;
    const bool simple = r->kind != pr::request_kind::sync;
    const auto o = routing::answer_lost_unit(status, r->effect & kept, true, simple);
    append_lost_answer(out, o.answer);
    append_ready(out, o.after);
    status = o.after;
    ++units;
  }
  // The client's batch sent in part (its Sync still to come), or a copy it is still sending:
  // the error now, as PostgreSQL sends it, and the rest skipped up to the Sync.
  const bool partial = core_.mid_batch();
  if (partial || (units == 0 && pl.copying_in())) {
    const auto o = routing::answer_lost_unit(status, pl.open_effect() & kept, true, false);
    append_lost_answer(out, o.answer);
    status = o.after;
    ++units;
  }
  spdlog::info("[c{}] {}: {} unit(s) in flight answered, transaction status now {}", id_, why, units,
               static_cast<char>(status));
  attached_.reset();
  core_.server_lost(status, partial);
  if (!server_writing_) server_out_.clear();
  show_names_.clear();
  deferred_shows_.clear();
  duplicate_names_.clear();
  batch_resets_all_ = false;
  batch_tx_ = routing::tx_effect::none;
  batch_copy_in_ = false;
  capture_after_copy_ = false;
  captured_.reset();
  tx_wrote_ = false;
  batch_timed_ = false;
  tx_timed_ = false;
  return true;
}

void session::append_lost_answer(std::string& out, routing::lost_answer answer) {
  using routing::lost_answer;
  std::string_view code;
  std::string message;
  switch (answer) {
    case lost_answer::run:
      return;
    case lost_answer::rollback_done:
      pr::be::serialize(pr::be::command_complete{"ROLLBACK"}, out);
      return;
    case lost_answer::unknown_outcome:
      code = pr::sqlstate::transaction_resolution_unknown;
      message = lost_because_ + " before it answered: the transaction may or may not have committed";
      break;
    case lost_answer::rolled_back:
      code = pr::sqlstate::admin_shutdown;
      message = lost_because_ + ": the transaction was rolled back, nothing of it was committed";
      break;
    case lost_answer::aborted:
      code = pr::sqlstate::in_failed_sql_transaction;
      message = "current transaction is aborted, commands ignored until end of transaction block";
      break;
  }
  pr::append_error(out, pr::severity::error, code, message);
  worker_.meter().errors.count(error_meter::origin::meridian, code);
}

}  // namespace meridian::proxy
