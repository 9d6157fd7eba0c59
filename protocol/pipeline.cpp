#include "protocol/pipeline.hpp"

namespace meridian::protocol {

namespace be_t = backend_type;
namespace fe_t = frontend_type;

void pipeline::sent(char type, char describe_kind, bool synthetic, std::uint32_t tag) {
  request_kind kind;
  switch (type) {
    case fe_t::parse: kind = request_kind::parse; break;
    case fe_t::bind: kind = request_kind::bind; break;
    case fe_t::describe:
      kind = describe_kind == 'P' ? request_kind::describe_portal : request_kind::describe_statement;
      break;
    case fe_t::execute: kind = request_kind::execute; break;
    case fe_t::close: kind = request_kind::close; break;
    case fe_t::sync: kind = request_kind::sync; break;
    case fe_t::query: kind = request_kind::query; break;
    case fe_t::function_call: kind = request_kind::function_call; break;
    case fe_t::copy_done:
    case fe_t::copy_fail: kind = request_kind::copy_end; break;
    default: return;
  }
  sent(pending_request{kind, synthetic, false, 0, tag});
}

void pipeline::sent(pending_request request) {
  if (request.ends_client_unit()) {
    request.effect |= open_effect_;
    open_effect_ = 0;
  }
  if (copy_in_) {
    // The server reads copy messages only: it ignores a Sync, and the copy ends here.
    if (request.kind == request_kind::copy_end) copy_in_ = false;
    if (request.kind == request_kind::sync || request.kind == request_kind::copy_end) {
      open_effect_ |= request.effect;  // the unit goes on: its end is the Sync after the copy's
      return;
    }
  }
  if (request.kind == request_kind::copy_end && (skipping_ || !has_head())) return;  // no copy to end
  if (skipping_) {
    // The server discards everything up to the next Sync after an error.
    if (request.kind != request_kind::sync) {
      discarded_.push_back(request);
      return;
    }
    skipping_ = false;
  }
  queue_.push_back(request);
}

std::size_t pipeline::outstanding_syncs() const {
  std::size_t n = 0;
  for (std::size_t i = head_; i < queue_.size(); ++i) {
    auto k = queue_[i].kind;
    if (k == request_kind::sync || k == request_kind::query || k == request_kind::function_call) ++n;
  }
  return n;
}

void pipeline::clear() {
  queue_.clear();
  head_ = 0;
  skipping_ = false;
  copy_in_ = false;
  discarded_.clear();
  open_effect_ = 0;
}

void pipeline::enter_copy_in() {
  for (std::size_t i = head_ + 1; i < queue_.size(); ++i) {
    const auto k = queue_[i].kind;
    if (k == request_kind::sync || k == request_kind::copy_end) {
      open_effect_ |= queue_[i].effect;  // the copy's unit ends at the Sync after its end
      queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(i));
      --i;
      if (k == request_kind::copy_end) return;
    }
  }
  copy_in_ = true;  // the copy's end is still to come from the client
}

void pipeline::discard_until_sync() {
  while (has_head() && head().kind != request_kind::sync) {
    if (head().kind != request_kind::copy_end) discarded_.push_back(head());
    pop();
  }
  if (!has_head()) skipping_ = true;
}

response_verdict pipeline::received(char type) {
  response_verdict v;
  // Asynchronous messages may arrive at any time and belong to no request.
  if (type == be_t::parameter_status || type == be_t::notice_response || type == be_t::notification_response) {
    if (has_head() && head().synthetic && head().kind == request_kind::query) v.forward = false;
    return v;
  }
  if (!has_head()) {
    // An ErrorResponse with nothing outstanding is the server announcing it is going away (FATAL).
    v.unexpected = type != be_t::error_response;
    v.unsolicited = type == be_t::error_response;
    return v;
  }
  auto& h = head();
  v.forward = !h.synthetic;
  auto expect = [&](bool ok) {
    if (!ok) v.unexpected = true;
  };
  switch (type) {
    case be_t::parse_complete:
      expect(h.kind == request_kind::parse);
      pop();
      break;
    case be_t::bind_complete:
      expect(h.kind == request_kind::bind);
      pop();
      break;
    case be_t::close_complete:
      expect(h.kind == request_kind::close);
      pop();
      break;
    case be_t::parameter_description:
      expect(h.kind == request_kind::describe_statement);
      break;
    case be_t::row_description:
      if (h.kind == request_kind::describe_statement || h.kind == request_kind::describe_portal) {
        pop();
      } else {
        expect(h.kind == request_kind::query);
      }
      break;
    case be_t::no_data:
      expect(h.kind == request_kind::describe_statement || h.kind == request_kind::describe_portal);
      pop();
      break;
    case be_t::command_complete:
    case be_t::empty_query_response:
      if (h.kind == request_kind::execute) {
        pop();
      } else {
        expect(h.kind == request_kind::query);
      }
      break;
    case be_t::portal_suspended:
      expect(h.kind == request_kind::execute);
      pop();
      break;
    case be_t::copy_in_response:
      expect(h.kind == request_kind::execute || h.kind == request_kind::query);
      enter_copy_in();
      break;
    case be_t::data_row:
    case be_t::copy_data:
    case be_t::copy_done:
    case be_t::copy_out_response:
    case be_t::copy_both_response:
      expect(h.kind == request_kind::execute || h.kind == request_kind::query);
      break;
    case be_t::function_call_response:
      expect(h.kind == request_kind::function_call);
      break;
    case be_t::error_response:
      copy_in_ = false;  // an error ends a copy: the server no longer reads copy messages
      if (h.kind == request_kind::query || h.kind == request_kind::function_call) {
        // Simple protocol: ReadyForQuery follows. A failed injected query is swallowed whole.
        if (h.synthetic) v.synthetic_error = true;
        break;
      }
      // Extended protocol: the failing request and all up to the next Sync are discarded.
      // The error is forwarded even for an injected Parse: the client's own Bind is among the
      // discarded requests and the client must learn why.
      v.forward = true;
      if (h.synthetic) v.synthetic_error = true;
      discard_until_sync();
      break;
    case be_t::ready_for_query:
      expect(h.kind == request_kind::sync || h.kind == request_kind::query || h.kind == request_kind::function_call);
      pop();
      v.ready = true;
      break;
    default:
      v.unexpected = true;
      break;
  }
  return v;
}

}  // namespace meridian::protocol
