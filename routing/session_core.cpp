#include "routing/session_core.hpp"

#include "protocol/backend.hpp"
#include "protocol/framing.hpp"
#include "protocol/frontend.hpp"

namespace meridian::routing {

namespace pr = protocol;
namespace fe_t = protocol::frontend_type;
namespace be_t = protocol::backend_type;

namespace {

bool needs_primary(const classification& c, hint h) {
  return c.where == target::primary || c.tx == tx_effect::begin || c.pins_session || h == hint::primary;
}

bool copy_message(char t) { return t == fe_t::copy_data || t == fe_t::copy_done || t == fe_t::copy_fail; }

}  // namespace

session_core::looked* session_core::look(std::string_view data, std::size_t index,
                                                         std::size_t offset) {
  if (index < ahead_.size()) return &ahead_[index];
  const auto r = pr::next_frame(data.substr(offset), settings_.max_message);
  if (r.status == pr::frame_status::invalid) {
    violation_ = r.reason;
    return nullptr;
  }
  if (r.status == pr::frame_status::need_more) return nullptr;
  const auto& m = r.msg;
  looked l{m.wire_size, m.type, false, std::nullopt, 0, {}};
  auto bad = [&](const pr::protocol_error& e) -> looked* {
    violation_ = e.message;
    return nullptr;
  };
  auto statement = [&](std::string_view sql) {
    statement_info s{classifier_.get(sql), leading_hint(sql)};
    l.write = needs_primary(s.cls, s.forced);
    l.statement = std::move(s);
  };
  switch (m.type) {
    case fe_t::query: {
      auto q = pr::fe::parse_query(m.body);
      if (!q) return bad(q.error());
      statement(q->sql);
      break;
    }
    case fe_t::parse: {
      auto p = pr::fe::parse_parse(m.body);
      if (!p) return bad(p.error());
      statement(p->sql);
      l.name = p->statement;
      break;
    }
    case fe_t::bind: {
      auto b = pr::fe::parse_bind(m.body);
      if (!b) return bad(b.error());
      l.name = b->statement;
      // The statement it binds as the client last prepared it: in a Parse ahead of it that is
      // not forwarded yet, else among those forwarded.
      const statement_info* s = nullptr;
      bool found = false;
      for (std::size_t i = ahead_.size(); i-- > 0 && !found;) {
        if (ahead_[i].type == fe_t::parse && ahead_[i].name == l.name) {
          s = ahead_[i].statement ? &*ahead_[i].statement : nullptr;
          found = true;
        }
      }
      if (!found) {
        if (l.name.empty()) {
          if (unnamed_) s = &*unnamed_;
        } else if (auto it = statements_.find(l.name); it != statements_.end()) {
          s = &it->second;
        }
      }
      if (s) l.write = needs_primary(s->cls, s->forced);
      break;
    }
    case fe_t::describe: {
      auto d = pr::fe::parse_describe(m.body);
      if (!d) return bad(d.error());
      l.kind = static_cast<char>(d->kind);
      l.name = d->name;
      break;
    }
    case fe_t::close: {
      auto c = pr::fe::parse_close(m.body);
      if (!c) return bad(c.error());
      l.kind = static_cast<char>(c->kind);
      l.name = c->name;
      break;
    }
    case fe_t::function_call: {
      auto f = pr::fe::parse_function_call(m.body);
      if (!f) return bad(f.error());
      l.write = true;  // what a function called by OID does is not known
      break;
    }
    default: {
      if (!fe_t::known(m.type) || m.type == fe_t::password) {
        violation_ = "invalid frontend message type " + std::to_string(static_cast<unsigned char>(m.type));
        return nullptr;
      }
      auto v = pr::fe::validate(m.type, m.body);
      if (!v) return bad(v.error());
      break;
    }
  }
  ahead_.push_back(std::move(l));
  return &ahead_.back();
}

route_request session_core::route_unit(std::string_view data) {
  route_request req{target::any, hint::none, true, {}};
  std::size_t offset = 0;
  for (std::size_t i = 0;; ++i) {
    if (!look(data, i, offset)) break;
    const auto& l = ahead_[i];
    if (l.statement) add_statement(req, l.statement->cls, l.statement->forced);
    if (l.write) req.where = target::primary;
    offset += l.size;
    if (l.type == fe_t::sync || l.type == fe_t::query || l.type == fe_t::function_call) break;
  }
  return req;
}

bool session_core::releasable() const {
  return attached_ && !fresh_ && !pinned_ && !settings_.session_pooling && pipeline_.empty() && !in_transaction_block() &&
         !batch_open_ && !closing_batch_;
}

session_core::step session_core::consume(step_kind kind, std::size_t size) {
  ahead_.pop_front();
  return step{kind, size};
}

session_core::step session_core::next(std::string_view data) {
  if (!violation_.empty()) return step{step_kind::violation, 0, {}, nullptr, violation_.c_str()};
  if (releasable()) return step{step_kind::release};
  auto* m = look(data, 0, 0);
  if (!m) {
    if (!violation_.empty()) return step{step_kind::violation, 0, {}, nullptr, violation_.c_str()};
    return step{step_kind::need_more};
  }
  if (m->type == fe_t::terminate) return consume(step_kind::terminate, m->size);
  if (skipping_) {
    if (m->type != fe_t::sync) return consume(step_kind::drop, m->size);
    skipping_ = false;
    return consume(step_kind::answer_ready, m->size);
  }

  if (!attached_) {
    // Leftovers of a copy that already ended, and a Flush with nothing to flush: PostgreSQL
    // ignores them too.
    if (copy_message(m->type) || m->type == fe_t::flush) return consume(step_kind::drop, m->size);
    return step{step_kind::attach, 0, route_unit(data)};
  }
  if (closing_batch_) return step{step_kind::wait_server};
  // Switching servers here would change what the client sees.
  if (in_transaction_block() || pinned_ || settings_.session_pooling || pipeline_.copying_in() ||
      copy_message(m->type))
    return forward(*m);

  if (batch_open_) {
    // The batch goes on where it is, if that server can run this message.
    if (server_can_take(*m)) return forward(*m);
    // A replica's batch asked to write: close it there (the Sync also makes the replica send
    // what it holds back), then move.
    closing_batch_ = true;
    fresh_ = false;
    batch_open_ = false;
    pipeline_.sent(pr::pending_request{pr::request_kind::sync, true});
    return step{step_kind::send_sync};
  }
  // A new unit while the server still answers the last one: pipelined on, when it can run it.
  if (route_unit(data).where == target::primary && replica_) return step{step_kind::wait_server};
  return forward(*m);
}

session_core::step session_core::forward(looked& m) {
  step s{step_kind::forward, m.size};
  fresh_ = false;
  switch (m.type) {
    case fe_t::parse:
      if (m.statement) {
        if (m.name.empty())
          unnamed_ = m.statement;
        else
          statements_.insert_or_assign(m.name, *m.statement);
      }
      batch_open_ = true;
      break;
    case fe_t::close:
      if (m.kind == 'S') {
        if (m.name.empty())
          unnamed_.reset();
        else
          statements_.erase(m.name);
      }
      batch_open_ = true;
      break;
    case fe_t::bind:
    case fe_t::describe:
    case fe_t::execute:
      batch_open_ = true;
      break;
    case fe_t::sync:
    case fe_t::query:
    case fe_t::function_call:
      batch_open_ = false;  // a Query ends an open batch's implicit transaction too
      break;
    default:
      break;
  }
  if (m.type == fe_t::query) unnamed_.reset();  // a simple Query drops the unnamed statement
  pipeline_.sent(m.type, m.kind == 0 ? 'S' : m.kind);
  if (m.statement && m.statement->cls.pins_session) pinned_ = true;
  last_statement_ = std::move(m.statement);
  s.statement = last_statement_ ? &*last_statement_ : nullptr;
  ahead_.pop_front();
  return s;
}

void session_core::attached(bool replica) {
  attached_ = true;
  fresh_ = true;
  replica_ = replica;
  tx_ = pr::tx_status::idle;
  pipeline_.clear();
}

void session_core::released() {
  attached_ = false;
  replica_ = false;
}

session_core::server_verdict session_core::server_message(char type, std::string_view body) {
  const auto v = pipeline_.received(type);
  server_verdict out{v.forward, v.ready, v.unexpected, false};
  if (type == be_t::error_response) {
    if (closing_batch_) batch_failed_ = true;
    if (auto e = pr::be::parse_error_fields(body)) {
      const auto severity = e->get('V').empty() ? e->get('S') : e->get('V');
      out.fatal = severity == "FATAL" || severity == "PANIC";
    }
    if (out.fatal) out.forward = true;  // the client learns why, before the session ends
  }
  if (v.ready && !body.empty()) {
    tx_ = static_cast<pr::tx_status>(body[0]);
    if (!v.forward) {
      // Meridian's own Sync answered: the batch moves on, or what is left of it is skipped.
      closing_batch_ = false;
      skipping_ = batch_failed_;
      batch_failed_ = false;
    }
  }
  return out;
}

}  // namespace meridian::routing
