#include "routing/session_core.hpp"

#include "protocol/framing.hpp"
#include "protocol/frontend.hpp"

namespace meridian::routing {

namespace pr = protocol;
namespace fe_t = protocol::frontend_type;

namespace {

bool needs_primary(const classification& c, hint h) {
  return c.where == target::primary || c.tx == tx_effect::begin || c.pins_session || h == hint::primary;
}

std::uint8_t effect_of(const classification& c, hint h) {
  namespace ue = unit_effect;
  std::uint8_t e = 0;
  // (A replica hint does not make a statement a read: routed to the primary, it may write.)
  if (c.where == target::primary || h == hint::primary) e |= ue::writes;
  if (c.commits) e |= ue::commits;
  if (c.tx == tx_effect::begin || c.tx == tx_effect::begin_read_only) e |= ue::begins;
  if (c.tx == tx_effect::end) e |= ue::ends;
  return e;
}

bool copy_message(char t) { return t == fe_t::copy_data || t == fe_t::copy_done || t == fe_t::copy_fail; }

}  // namespace

session_core::looked* session_core::look(std::string_view data, std::size_t index, std::size_t offset) {
  if (index < ahead_count()) return &ahead(index);
  const auto r = pr::next_frame(data.substr(offset), settings_.max_message);
  if (r.status == pr::frame_status::invalid) {
    violation_ = r.reason;
    return nullptr;
  }
  if (r.status == pr::frame_status::need_more) return nullptr;
  const auto& m = r.msg;
  if (!fe_t::known(m.type) || m.type == fe_t::password) {
    violation_ = "invalid frontend message type " + std::to_string(static_cast<unsigned char>(m.type));
    return nullptr;
  }
  // Everything looked at was consumed: the slots are used again (what the last forward step
  // pointed at lives until here, the next call).
  if (head_ == ahead_.size() && head_ > 0) {
    ahead_.clear();
    head_ = 0;
  }
  auto& l = ahead_.emplace_back();
  l.size = m.wire_size;
  l.type = m.type;
  auto bad = [&](const pr::protocol_error& e) -> looked* {
    violation_ = e.message;
    ahead_.pop_back();
    return nullptr;
  };
  auto statement = [&](std::string_view sql) {
    auto& s = l.statement.emplace(statement_info{classifier_.classify_statement(sql), leading_hint(sql)});
    l.write = needs_primary(s.cls, s.forced);
    l.commits = s.cls.commits && l.type == fe_t::query;  // a Parse prepares: its Bind runs it
    l.effect = effect_of(s.cls, s.forced);
  };
  // Only what routing needs is read here; the edge checks every message whole as it forwards it.
  auto cstring = [](std::string_view& body) {
    const auto end = body.find('\0');
    const auto out = body.substr(0, end);
    body.remove_prefix(end == std::string_view::npos ? body.size() : end + 1);
    return out;
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
      auto body = m.body;
      (void)cstring(body);  // the portal
      const auto name = cstring(body);
      // The statement it binds as the client last prepared it: in a Parse ahead of it that is
      // not forwarded yet, else among those forwarded.
      const statement_info* s = nullptr;
      bool found = false;
      for (std::size_t i = ahead_.size() - 1; i-- > head_ && !found;) {
        if (ahead_[i].type == fe_t::parse && ahead_[i].name == name) {
          s = ahead_[i].statement ? &*ahead_[i].statement : nullptr;
          found = true;
        }
      }
      if (!found) {
        if (name.empty()) {
          if (unnamed_) s = &*unnamed_;
        } else if (auto it = statements_.find(name); it != statements_.end()) {
          s = &it->second;
        }
      }
      if (s) {
        l.write = needs_primary(s->cls, s->forced);
        l.commits = s->cls.commits;
        l.effect = effect_of(s->cls, s->forced);
      }
      break;
    }
    case fe_t::describe:
    case fe_t::close: {
      auto body = m.body;
      if (!body.empty()) {
        l.kind = body[0];
        body.remove_prefix(1);
        if (m.type == fe_t::close && l.kind == 'S') l.name = cstring(body);
      }
      break;
    }
    case fe_t::function_call:
      l.write = true;  // what a function called by OID does is not known
      l.effect = unit_effect::writes;
      break;
    default:
      break;
  }
  return &l;
}

route_request session_core::route_unit(std::string_view data) {
  route_request req{target::any, hint::none, true, {}};
  // The most common unit, a simple Query, looked at already.
  if (ahead_count() > 0 && ahead(0).type == fe_t::query) {
    const auto& q = ahead(0);
    add_statement(req, q.statement->cls, q.statement->forced);
    if (q.write) req.where = target::primary;
    return req;
  }
  std::size_t offset = 0;
  for (std::size_t i = 0;; ++i) {
    if (!look(data, i, offset)) break;
    const auto& l = ahead(i);
    if (l.statement) add_statement(req, l.statement->cls, l.statement->forced);
    if (l.write) req.where = target::primary;
    offset += l.size;
    if (l.type == fe_t::sync || l.type == fe_t::query || l.type == fe_t::function_call) break;
  }
  return req;
}

bool session_core::holds_server() const {
  return fresh_ || pinned_ || settings_.session_pooling || in_transaction_block() || batch_open_ || closing_batch_;
}

session_core::step session_core::consume(step_kind kind, std::size_t size) {
  ++head_;
  return step{.kind = kind, .length = size};
}

session_core::step session_core::next(std::string_view data, server_state server) {
  if (!violation_.empty()) return step{.kind = step_kind::violation, .why = violation_.c_str()};
  if (attached_ && !server.pending && !holds_server()) return step{step_kind::release};
  auto* m = look(data, 0, 0);
  if (!m) {
    if (!violation_.empty()) return step{.kind = step_kind::violation, .why = violation_.c_str()};
    return step{step_kind::need_more};
  }
  if (m->type == fe_t::terminate) return consume(step_kind::terminate, m->size);
  if (skipping_ || emulating_) [[unlikely]]
    return skip_or_emulate(*m);

  if (!attached_) {
    // Leftovers of a copy that already ended, and a Flush with nothing to flush: PostgreSQL
    // ignores them too.
    if (copy_message(m->type) || m->type == fe_t::flush) return consume(step_kind::drop, m->size);
    if (lost_ != pr::tx_status::idle) {
      auto st = answer_lost(data, *m);
      if (st.kind != step_kind::attach) return st;
    }
    return step{.kind = step_kind::attach, .request = route_unit(data)};
  }
  if (closing_batch_) return step{step_kind::wait_server};
  // On the primary, past the unit's checkout: what runs a write outside a block (a Parse only
  // prepares), and what commits.
  if ((m->commits || (m->write && !in_transaction_block() && m->type != fe_t::parse)) && !replica_ && checked_ == 0 &&
      !authorized_ && tx_ != pr::tx_status::failed)
    return step{.kind = step_kind::authorize, .length = m->size};
  // Attached for this very unit (its route is decided), or switching servers here would change
  // what the client sees.
  if (fresh_ || in_transaction_block() || pinned_ || settings_.session_pooling || server.copying_in ||
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
    return step{step_kind::send_sync};
  }
  // A new unit while the server still answers the last one: pipelined on, when it can run it.
  if (replica_ && route_unit(data).where == target::primary) return step{step_kind::wait_server};
  return forward(ahead(0));  // (route_unit may have moved what m pointed at)
}

session_core::step session_core::skip_or_emulate(const looked& m) {
  if (emulating_) {
    auto st = consume(m.type == fe_t::sync ? step_kind::answer_ready : step_kind::answer_lost, m.size);
    st.lost = lost_answer::rollback_done;
    st.ready = skip_ready_;
    if (m.type == fe_t::sync) {
      emulating_ = false;
      skip_ready_ = pr::tx_status::idle;
    }
    return st;
  }
  if (m.type != fe_t::sync) return consume(step_kind::drop, m.size);
  skipping_ = false;
  auto st = consume(step_kind::answer_ready, m.size);
  st.ready = skip_ready_;
  skip_ready_ = pr::tx_status::idle;
  return st;
}

session_core::step session_core::answer_lost(std::string_view data, looked& m) {
  if (m.type == fe_t::sync) {
    // A Sync alone: the status, as PostgreSQL gives it in a block.
    auto st = consume(step_kind::answer_ready, m.size);
    st.ready = lost_;
    return st;
  }
  const bool simple = m.type == fe_t::query || m.type == fe_t::function_call;
  std::uint8_t effect = m.effect;
  if (!simple) {
    // An extended batch: what its statements do, as far as the client has sent it. It ends the
    // block only if each of its statements does (a ROLLBACK or COMMIT alone, as drivers send it).
    bool only_ends = true;
    std::size_t offset = 0;
    for (std::size_t i = 0;; ++i) {
      const auto* l = look(data, i, offset);
      if (!l || l->type == fe_t::sync) break;
      effect |= l->effect;
      if ((l->type == fe_t::parse || l->type == fe_t::bind) && !(l->effect & unit_effect::ends)) only_ends = false;
      offset += l->size;
    }
    if (!only_ends) effect &= static_cast<std::uint8_t>(~(unit_effect::ends | unit_effect::commits));
  }
  const auto o = answer_lost_unit(lost_, effect, false, simple);
  lost_ = o.after;
  if (o.answer == lost_answer::run) return step{step_kind::attach};  // routed as any unit is
  if (!simple) {
    (o.answer == lost_answer::rollback_done ? emulating_ : skipping_) = true;
    skip_ready_ = o.after;
  }
  auto st = consume(step_kind::answer_lost, ahead(0).size);
  st.lost = o.answer;
  st.ready = o.after;
  return st;
}

void session_core::prepared(const std::string& name, const statement_info& s) {
  // A name prepared again: the new statement, unless the edge refused it (42P05: the name is in
  // use, and the old statement stays) or the client deallocated the old one with SQL, which
  // the core does not follow. Either may be the one Binds run, so the name keeps whichever
  // needs the primary: never a write on a replica, at worst a read on the primary.
  auto [it, inserted] = statements_.try_emplace(name, s);
  if (!inserted && !(needs_primary(it->second.cls, it->second.forced) && !needs_primary(s.cls, s.forced)))
    it->second = s;
}

session_core::step session_core::forward(looked& m) {
  step s{.kind = step_kind::forward, .length = m.size};
  s.effect = m.effect;
  fresh_ = false;
  authorized_ = false;
  if (checked_ > 0) --checked_;
  switch (m.type) {
    case fe_t::parse:
      if (m.statement) {
        if (m.name.empty())
          unnamed_ = m.statement;
        else
          prepared(m.name, *m.statement);
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
      batch_failed_ = false;
      break;
    default:
      break;
  }
  if (m.type == fe_t::query) unnamed_.reset();  // a simple Query drops the unnamed statement
  if (m.statement) {
    // DISCARD ALL leaves no session state behind: the session is free to move again.
    if (m.statement->cls.discards_session) pinned_ = false;
    if (m.statement->cls.pins_session) pinned_ = true;
  }
  // The looked message stays in its slot until the next call: the step may point into it.
  s.statement = m.statement ? &*m.statement : nullptr;
  ++head_;
  return s;
}

void session_core::attached(bool replica) {
  attached_ = true;
  fresh_ = true;
  checked_ = ahead_count();  // judged by route_unit for the checkout
  replica_ = replica;
  tx_ = pr::tx_status::idle;
}

void session_core::released() {
  attached_ = false;
  replica_ = false;
  checked_ = 0;
}

void session_core::abandon() {
  released();
  fresh_ = false;
  batch_open_ = false;
  closing_batch_ = false;
  batch_failed_ = false;
  skipping_ = false;
  authorized_ = false;
  checked_ = 0;
  tx_ = pr::tx_status::idle;
  lost_ = pr::tx_status::idle;
  skip_ready_ = pr::tx_status::idle;
  emulating_ = false;
  forget_ahead();
}

void session_core::server_lost(pr::tx_status after, bool skip_batch) {
  abandon();
  lost_ = after;
  if (skip_batch) {
    skipping_ = true;
    skip_ready_ = after;
  }
}

void session_core::server_ready(pr::tx_status status, bool own) {
  tx_ = status;
  if (own) {
    // Meridian's own Sync answered: the batch moves on, or what is left of it is skipped.
    closing_batch_ = false;
    skipping_ = batch_failed_;
    batch_failed_ = false;
  }
}

}  // namespace meridian::routing
