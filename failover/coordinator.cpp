#include "failover/coordinator.hpp"

#include <algorithm>
#include <random>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace meridian::failover {

using json = nlohmann::json;
using proxy::error_code;
using proxy::use_awaitable;

namespace {
// Adds `name` to a record's fenced nodes (once).
void fence_in(std::vector<std::string>& fenced, const std::string& name) {
  if (std::find(fenced.begin(), fenced.end(), name) == fenced.end()) fenced.push_back(name);
}

std::int64_t ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}
}  // namespace

coordinator::coordinator(coordinator_settings settings, node_monitor& monitor, std::string configured_primary,
                         routing::write_authority& authority)
    : settings_(std::move(settings)),
      topology_key_(key("topology")),
      views_key_(key("views/")),
      own_view_key_(key("views/" + settings_.region)),
      intent_key_(key("intent")),
      status_key_(key("failover")),
      ending_prefix_(key("ending/")),
      monitor_(monitor),
      configured_primary_(std::move(configured_primary)),
      authority_(authority),
      admin_(monitor.io().get_executor(), settings_.admin) {
  record_.primary = configured_primary_;
  requests_key_ = key("requests/");
  pause_key_ = key("paused");
  authority_prefix_ = key("authority/");
  if (!settings_.etcd.empty()) {
    auto ex = monitor_.io().get_executor();
    etcd_ = std::make_unique<etcd_client>(ex, settings_.etcd);
    watch_etcd_ = std::make_unique<etcd_client>(ex, settings_.etcd);
    election_etcd_ = std::make_unique<etcd_client>(ex, settings_.etcd);
    election_ = std::make_unique<leader_election>(
        *election_etcd_,
        election_settings{key("leader"), settings_.id.empty() ? settings_.region : settings_.id, settings_.lease_ttl},
        [region = settings_.region](bool leading, const std::string& leader) {
          if (leading) {
            spdlog::info("coordination: this Meridian (in {}) leads", region);
          } else {
            spdlog::info("coordination: leader is {}", leader.empty() ? std::string("(none)") : leader);
          }
        });
    // Renewals on a client of their own whose requests end well before the authority they
    // would renew: one hanging in a partition must not hold up the next.
    const auto window = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.lease_ttl) - settings_.authority_margin;
    const auto timeout = std::clamp<std::chrono::milliseconds>(settings_.interval * 8, std::chrono::milliseconds(500), window / 2);
    lease_etcd_ = std::make_unique<etcd_client>(ex, settings_.etcd, timeout);
    // A random part: a process id may come again, its registration must not.
    std::random_device random;
    const auto token = (settings_.id.empty() ? settings_.region : settings_.id) + "/" +
                       std::to_string((std::uint64_t{random()} << 32) | random());
    lease_ = std::make_unique<write_lease>(
        *lease_etcd_,
        write_lease_settings{topology_key_, ending_prefix_, settings_.lease_ttl, settings_.authority_margin,
                             settings_.interval, authority_prefix_, token,
                             [this](const std::string& node) { return may_release(node); }},
        authority_);
  } else {
    authority_.grant_forever();
  }
}

bool coordinator::may_release(const std::string& name) const {
  if (!settings_.quiet || !settings_.quiet(name)) return false;
  const auto* n = node(name);
  if (!n || n->region != settings_.region) return true;
  const auto& h = monitor_.current().state(n->id).health;
  return (h.probed && !h.reachable && h.refused) || h.in_recovery || h.fenced_epoch == record_.epoch;
}

void coordinator::on_authority(write_lease::listener handler) {
  if (lease_) lease_->on_change(std::move(handler));
}

void coordinator::start() { asio::co_spawn(monitor_.io(), run(), asio::detached); }

bool coordinator::leading() const { return !election_ || election_->leading(); }

const routing::node* coordinator::node(const std::string& name) const {
  for (const auto& n : monitor_.current().nodes)
    if (n.name == name && !n.removed) return &n;
  return nullptr;
}

awaitable<void> coordinator::pause_until(clock::time_point t) {
  if (const auto now = clock::now(); t > now)
    co_await pause(std::chrono::duration_cast<std::chrono::milliseconds>(t - now) + std::chrono::milliseconds(1));
}

awaitable<void> coordinator::pause(std::chrono::milliseconds d) {
  asio::steady_timer t(monitor_.io(), d);
  error_code ec;
  co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
}

void coordinator::apply(const topology_record& r, std::int64_t revision) {
  if (have_record_ && r.epoch < record_.epoch) return;  // an older epoch never wins
  if (!node(r.primary)) {
    spdlog::error("coordination: topology epoch {} names an unknown primary \"{}\"; ignored", r.epoch, r.primary);
    return;
  }
  const bool changed = !have_record_ || !(r == record_);
  record_ = r;
  record_revision_ = revision;
  have_record_ = true;
  if (changed) {
    spdlog::info("coordination: topology epoch {}: primary {}{}{}", r.epoch, r.primary,
                 r.fenced.empty() ? "" : ", fenced: ", [&] {
                   std::string f;
                   for (const auto& n : r.fenced) f += (f.empty() ? "" : ", ") + n;
                   return f;
                 }());
    monitor_.assign(r.epoch, r.primary, r.fenced);
  }
  if (lease_) lease_->follow(r.epoch, r.primary, revision);
}

awaitable<void> coordinator::run() {
  if (!etcd_) {
    spdlog::warn("coordination: no etcd configured, this Meridian decides alone (for a single instance only)");
    apply(record_, 0);
    asio::co_spawn(monitor_.io(), lead(), asio::detached);
    co_return;
  }
  // The record in etcd, or the configured topology as epoch 1 if there is none yet.
  for (;;) {
    topology_record initial;
    initial.primary = configured_primary_;
    initial.reason = "initial topology from " + settings_.region + "'s configuration";
    std::vector<etcd_compare> absent{{topology_key_, etcd_compare::target::create_revision, 0, {}}};
    std::vector<etcd_op> create{{etcd_op::kind::put, topology_key_, initial.to_json(), 0, false}};
    std::vector<etcd_op> read{{etcd_op::kind::get, topology_key_, {}, 0, false}};
    auto r = co_await etcd_->txn(std::move(absent), std::move(create), std::move(read));
    if (r) {
      if (r->succeeded) {
        apply(initial, r->revision);
        break;
      }
      if (!r->ranges.empty() && !r->ranges[0].empty()) {
        if (auto rec = topology_record::from_json(r->ranges[0][0].value)) {
          apply(*rec, r->ranges[0][0].mod_revision);
          break;
        }
        spdlog::error("coordination: {} holds no valid topology record", topology_key_);
      }
    } else {
      spdlog::warn("coordination: cannot read the topology from etcd: {}", r.error());
    }
    co_await pause(std::chrono::milliseconds(500));
  }
  asio::co_spawn(monitor_.io(), follow(topology_key_, [this](const etcd_kv* kv) {
    if (!kv) return;
    if (auto rec = topology_record::from_json(kv->value)) apply(*rec, kv->mod_revision);
  }), asio::detached);
  asio::co_spawn(monitor_.io(), publish_views(), asio::detached);
  asio::co_spawn(monitor_.io(), lease_->run(), asio::detached);
  asio::co_spawn(monitor_.io(), election_->run(), asio::detached);
  asio::co_spawn(monitor_.io(), lead(), asio::detached);
  asio::co_spawn(monitor_.io(), guard_primary(), asio::detached);
  asio::co_spawn(monitor_.io(), follow(pause_key_, [this](const etcd_kv* kv) { set_paused(kv && kv->value == "true"); }),
                 asio::detached);
}

awaitable<void> coordinator::follow(const std::string& key, std::function<void(const etcd_kv*)> on_value) {
  for (;;) {
    // Read, then watch from just after what was read: no change is missed in between.
    auto current = co_await etcd_->get(key);
    if (!current) {
      spdlog::warn("coordination: reading {}: {}", key, current.error());
      co_await pause(std::chrono::milliseconds(500));
      continue;
    }
    on_value(current->empty() ? nullptr : &current->front());
    const std::int64_t from = current->empty() ? 0 : current->front().mod_revision + 1;
    std::function<bool(const std::vector<etcd_event>&, std::int64_t)> on_change =
        [&on_value](const std::vector<etcd_event>& events, std::int64_t) {
          for (const auto& e : events) on_value(e.deleted ? nullptr : &e.kv);
          return true;
        };
    auto why = co_await watch_etcd_->watch(key, false, from, std::move(on_change));
    spdlog::warn("coordination: watch of {} ended: {}", key, why);
    co_await pause(std::chrono::milliseconds(200));
  }
}

awaitable<void> coordinator::publish_views() {
  std::int64_t lease = 0;
  auto renewed = clock::time_point{};
  for (;;) {
    const auto now = clock::now();
    if (lease == 0) {
      auto l = co_await etcd_->grant(settings_.lease_ttl);
      if (l) {
        lease = *l;
        renewed = now;
      } else {
        spdlog::warn("coordination: no lease for this region's view: {}", l.error());
      }
    } else if (now - renewed > settings_.lease_ttl / 3) {
      auto ttl = co_await etcd_->keep_alive(lease);
      if (ttl && *ttl > 0) {
        renewed = now;
      } else if (ttl || now - renewed > settings_.lease_ttl) {
        lease = 0;  // gone: a new one next time
      }
    }
    if (lease != 0) {
      auto v = view_of(monitor_.current(), settings_.region, now);
      v.paused = paused_;
      const std::string view = v.to_json();
      if (auto p = co_await etcd_->put(own_view_key_, view, lease); !p)
        spdlog::debug("coordination: publishing this region's view: {}", p.error());
    }
    co_await pause(settings_.interval);
  }
}

awaitable<std::vector<region_view>> coordinator::collect_views() {
  std::vector<region_view> out;
  if (!etcd_) {
    out.push_back(view_of(monitor_.current(), settings_.region, clock::now()));
    co_return out;
  }
  auto kvs = co_await etcd_->get(views_key_, true);
  if (!kvs) co_return out;
  for (const auto& kv : *kvs)
    if (auto v = region_view::from_json(kv.value)) out.push_back(std::move(*v));
  co_return out;
}

awaitable<void> coordinator::lead() {
  for (;;) {
    co_await pause(settings_.interval);
    if (!leading()) {
      checked_unfinished_ = false;
      ending_epoch_ = 0;  // a leader taking over finds any ending in etcd
    }
    if (!have_record_ || !leading()) continue;
    if (!checked_unfinished_) {
      checked_unfinished_ = true;
      co_await adopt_ending();
      co_await resume_unfinished();
    }
    const auto asked = clock::now();
    auto views = co_await collect_views();
    views_took_ = std::min<clock::duration>(clock::now() - asked, std::chrono::seconds(1));
    std::string why;
    const std::size_t regions = etcd_ ? settings_.regions : 1;
    if (etcd_) {
      // A primary that a majority of regions cannot reach even briefly: its epoch's write
      // authority starts ending now, so that a promotion, if detection follows, waits less.
      // Ending costs nothing until lease_ttl − authority_margin has passed (the Meridians hold
      // what they were granted), and it is given up as soon as the majority reaches it again.
      std::string seen;
      const bool suspected =
          primary_lost(views, record_.primary, regions, settings_.detection / 4, seen, settings_.detection_refused / 4);
      if (suspected && settings_.automatic && ending_epoch_ != record_.epoch) {
        co_await end_epoch(seen);
      } else if (!suspected && ending_epoch_ == record_.epoch) {
        co_await give_up_ending(seen);
      }
    }
    if (primary_lost(views, record_.primary, regions, settings_.detection, why, settings_.detection_refused)) {
      if (settings_.automatic) {
        co_await fail_over(views, why);
      } else if (why != last_reported_) {
        spdlog::error("coordination: {}; automatic failover is off: promote with meridianctl", why);
      }
      last_reported_ = why;
    }
    co_await lift_fence();
    co_await serve_requests();
    co_await fence_old_primaries();
  }
}

awaitable<void> coordinator::guard_primary() {
  std::uint64_t held_in = 0;   // the epoch over which authority was last held
  std::uint64_t fenced_in = 0;  // fenced (or found fenced) during the present loss
  std::uint64_t told = 0;       // the epoch whose failure to fence was logged
  auto last_attempt = clock::time_point{};
  for (;;) {
    co_await pause(settings_.interval);
    const auto now = clock::now();
    const auto& a = lease_->state();
    monitor_.set_primary_ending(!a.held(now) && a.told_ending() && a.epoch() == record_.epoch);
    if (a.held(now)) {
      held_in = a.epoch();
      fenced_in = 0;
      continue;
    }
    // Lost: it was held over the epoch in force, and its deadline passed a while ago (the
    // deadline is when it lapsed, or when the leader's ending stopped it). Cut off from the
    // majority, a margin: the majority may promote 3.5 s after its ending, which comes at the
    // earliest with this lapse. Told of the ending, lease_ttl − margin: it is fenced before the
    // promotion all the same (the ending is older than what this Meridian was told), and a
    // leader that gives the ending up (the majority sees the primary again) does so in time.
    if (a.epoch() == 0 || a.epoch() != held_in || a.epoch() != record_.epoch || fenced_in == a.epoch()) continue;
    const auto after = a.told_ending() ? std::chrono::duration_cast<std::chrono::milliseconds>(settings_.lease_ttl) -
                                             settings_.authority_margin
                                       : settings_.authority_margin;
    if (now - a.deadline() < after || now - last_attempt < std::chrono::seconds(1)) continue;
    const auto* p = node(record_.primary);
    if (!p || p->region != settings_.region) continue;  // another region's: its own Meridians guard it
    const auto& h = monitor_.current().state(p->id).health;
    if (!h.probed || !h.reachable || h.in_recovery) continue;
    last_attempt = now;
    const auto epoch = a.epoch();
    const auto lost_ms = ms_between(a.deadline(), now);
    auto f = co_await admin_.self_fence(*p, epoch);
    if (!f) {
      if (told != epoch) spdlog::error("write authority: cannot fence the primary {} of this region: {}", p->name, f.error());
      told = epoch;
      continue;
    }
    fenced_in = epoch;
    if (*f && on_fence_) on_fence_(false);
    if (*f)
      spdlog::error("write authority: lost {} ms ago over epoch {}: fenced the primary {} of this region (read-only, "
                    "meridian.fenced_epoch = {}, its client sessions ended), so that nothing writes to it, direct "
                    "clients included, unless the etcd majority's leader lifts it",
                    lost_ms, epoch, p->name, epoch);
  }
}

awaitable<void> coordinator::lift_fence() {
  // A primary fenced by a Meridian that lost write authority, while this leader holds it over
  // the same epoch and reaches the primary: the majority keeps it, so it takes writes again.
  if (!lease_ || ending_epoch_ == record_.epoch) co_return;
  const auto* p = node(record_.primary);
  if (!p) co_return;
  const auto& h = monitor_.current().state(p->id).health;
  const auto now = clock::now();
  if (!h.probed || !h.reachable || h.in_recovery || h.fenced_epoch != record_.epoch || !lease_->state().held(now) ||
      now - last_lift_attempt_ < std::chrono::seconds(1))
    co_return;
  last_lift_attempt_ = now;
  auto lifted = co_await admin_.lift_self_fence(*p, record_.epoch);
  if (!lifted) {
    spdlog::error("write authority: cannot lift the fence of the primary {}: {}", p->name, lifted.error());
  } else if (*lifted) {
    if (on_fence_) on_fence_(true);
    spdlog::warn("write authority: the primary {} was fenced by a Meridian that lost write authority over epoch {}; "
                 "the etcd majority keeps it (this leader holds that authority and reaches it): writable again",
                 p->name, record_.epoch);
  }
}

void coordinator::set_paused(bool paused) {
  if (paused == paused_) return;
  paused_ = paused;
  spdlog::warn("coordination: new transactions {}", paused ? "paused" : "resumed");
  if (on_pause_) on_pause_(paused);
}

awaitable<tl::expected<void, std::string>> coordinator::request_pause(bool paused) {
  if (!etcd_) {
    set_paused(paused);
    co_return tl::expected<void, std::string>{};
  }
  const std::string value = paused ? "true" : "false";
  auto r = co_await etcd_->put(pause_key_, value);
  if (!r) co_return tl::unexpected(r.error());
  // Done when every region's Meridian says so in its view (they apply it from their watch).
  for (const auto deadline = clock::now() + std::chrono::seconds(3);;) {
    auto views = co_await collect_views();
    if (std::all_of(views.begin(), views.end(), [&](const region_view& v) { return v.paused == paused; }))
      co_return tl::expected<void, std::string>{};
    if (clock::now() >= deadline) {
      std::string missing;
      for (const auto& v : views)
        if (v.paused != paused) missing += (missing.empty() ? "" : ", ") + v.region;
      co_return tl::unexpected("not confirmed in time by " + missing);
    }
    co_await pause(std::chrono::milliseconds(20));
  }
}

awaitable<void> coordinator::serve_requests() {
  if (!etcd_) co_return;
  auto requests = co_await etcd_->get(requests_key_, true);
  if (!requests) co_return;
  for (const auto& r : *requests) {
    // One request at a time, each done once: delete it first (only if still the same one).
    std::vector<etcd_compare> same{{r.key, etcd_compare::target::mod_revision, r.mod_revision, {}}};
    std::vector<etcd_op> take{{etcd_op::kind::erase, r.key, {}, 0, false}};
    auto taken = co_await etcd_->txn(std::move(same), std::move(take), {});
    if (!taken || !taken->succeeded) continue;
    json j = json::parse(r.value, nullptr, false);
    if (j.is_discarded()) continue;
    const std::string action = j.value("action", std::string());
    const std::string target = j.value("node", std::string());
    if (action == "promote") {
      spdlog::warn("failover: operator asks to promote {}", target);
      auto views = co_await collect_views();
      co_await fail_over(views, "operator promote of " + target, target);
    } else if (action == "rejoin") {
      spdlog::warn("rejoin: operator asks for {}", target);
      if (auto done = co_await rejoin(target); !done) {
        const std::string status = json{{"state", "rejoin failed"}, {"reason", done.error()}, {"epoch", record_.epoch}}.dump();
        co_await record_status(status);
      }
    } else if (action == "switchover") {
      spdlog::warn("switchover: operator asks for {}", target);
      if (auto done = co_await switch_over(target); !done) {
        const std::string status = json{{"state", "switchover failed"}, {"reason", done.error()}, {"epoch", record_.epoch}}.dump();
        co_await record_status(status);
      }
    }
  }
}

std::optional<std::string> coordinator::promotable(const std::string& target) const {
  const auto* n = node(target);
  if (!n) return "no node is named \"" + target + "\"";
  if (target == record_.primary) return target + " is the primary already";
  if (std::find(record_.fenced.begin(), record_.fenced.end(), target) != record_.fenced.end())
    return target + " is fenced: rejoin it as a replica first";
  const auto& h = monitor_.current().state(n->id).health;
  if (!h.probed || !h.reachable || !h.in_recovery) return target + " is not a reachable replica";
  return std::nullopt;
}

awaitable<tl::expected<void, std::string>> coordinator::ask_leader(const std::string& action, const std::string& target) {
  const std::string request = json{{"action", action}, {"node", target}, {"by", settings_.id}}.dump();
  const std::string request_key = requests_key_ + action;
  if (auto p = co_await etcd_->put(request_key, request); !p) co_return tl::unexpected(p.error());
  co_return tl::expected<void, std::string>{};
}

awaitable<bool> coordinator::epoch_moved_on(std::uint64_t epoch, std::chrono::milliseconds patience) {
  const auto deadline = clock::now() + patience;
  while (record_.epoch == epoch && clock::now() < deadline) co_await pause(std::chrono::milliseconds(50));
  co_return record_.epoch != epoch;
}

awaitable<tl::expected<std::string, std::string>> coordinator::await_epoch_after(std::uint64_t epoch,
                                                                                const std::string& target) {
  // Locals, not expressions inside co_await: GCC 12 miscompiles those (it trapped here).
  const std::chrono::milliseconds patience = settings_.admin.promote_timeout + std::chrono::seconds(30);
  const bool moved = co_await epoch_moved_on(epoch, patience);
  if (!moved) co_return tl::unexpected(std::string("no new epoch in time: see the logs and `meridianctl status`"));
  if (record_.primary != target)
    co_return tl::unexpected("epoch " + std::to_string(record_.epoch) + " made " + record_.primary + " the primary");
  co_return "epoch " + std::to_string(record_.epoch) + ": " + target + " is the primary";
}

awaitable<tl::expected<std::string, std::string>> coordinator::request_rejoin(const std::string& target) {
  if (!node(target)) co_return tl::unexpected("no node is named \"" + target + "\"");
  if (std::find(record_.fenced.begin(), record_.fenced.end(), target) == record_.fenced.end())
    co_return tl::unexpected(target + " is not fenced");
  const auto epoch = record_.epoch;
  if (!etcd_) co_return co_await rejoin(target);
  const std::string action = "rejoin";
  if (auto asked = co_await ask_leader(action, target); !asked) co_return tl::unexpected(asked.error());
  const std::chrono::milliseconds patience = settings_.admin.repoint_timeout + std::chrono::seconds(30);
  const bool moved = co_await epoch_moved_on(epoch, patience);
  (void)moved;  // the fenced list below says whether it worked
  if (std::find(record_.fenced.begin(), record_.fenced.end(), target) != record_.fenced.end())
    co_return tl::unexpected(target + " is still fenced: see the logs and `meridianctl status`");
  co_return "epoch " + std::to_string(record_.epoch) + ": " + target + " is a replica of " + record_.primary;
}

awaitable<tl::expected<std::string, std::string>> coordinator::rejoin(const std::string& target) {
  const auto* n = node(target);
  const auto* primary = node(record_.primary);
  if (!n || !primary) co_return tl::unexpected("no node is named \"" + target + "\"");
  if (std::find(record_.fenced.begin(), record_.fenced.end(), target) == record_.fenced.end())
    co_return tl::unexpected(target + " is not fenced");
  if (auto r = co_await admin_.rejoin(*n, *primary); !r) co_return tl::unexpected(r.error());
  topology_record next = record_;
  next.epoch = record_.epoch + 1;
  std::erase(next.fenced, target);
  next.reason = target + " rejoined as a replica of " + record_.primary;
  if (!co_await publish(next)) co_return tl::unexpected(std::string("the topology changed during the rejoin"));
  spdlog::warn("rejoin: epoch {}: {} is a replica of {}", next.epoch, target, next.primary);
  co_return "epoch " + std::to_string(next.epoch) + ": " + target + " is a replica of " + next.primary;
}

awaitable<tl::expected<std::string, std::string>> coordinator::request_switchover(const std::string& target) {
  if (auto why = promotable(target)) co_return tl::unexpected(*why);
  const auto epoch = record_.epoch;
  if (!etcd_) co_return co_await switch_over(target);
  const std::string action = "switchover";
  if (auto asked = co_await ask_leader(action, target); !asked) co_return tl::unexpected(asked.error());
  co_return co_await await_epoch_after(epoch, target);
}

awaitable<tl::expected<std::string, std::string>> coordinator::switch_over(const std::string& target) {
  if (auto why = promotable(target)) co_return tl::unexpected(*why);
  const auto* candidate = node(target);
  const auto* old = node(record_.primary);
  const auto started = clock::now();
  const auto bound = std::chrono::seconds(10);
  // 1. Every region holds new transactions (and says so in its view).
  if (auto p = co_await request_pause(true); !p) {
    (void)co_await request_pause(false);
    co_return tl::unexpected("cannot pause every region: " + p.error());
  }
  auto undo = [&](const std::string& why) -> awaitable<tl::expected<std::string, std::string>> {
    spdlog::error("switchover to {} abandoned: {}", target, why);
    (void)co_await admin_.set_read_only(*old, false);
    (void)co_await request_pause(false);
    co_return tl::unexpected(why);
  };
  // 2. Transactions Meridian admitted before the hold finish (one whose BEGIN reached the
  // primary after it turned read-only could not write); then the primary takes no new
  // writes from anyone, finishes the open ones, and gives its final position.
  if (auto done = co_await admin_.drain_transactions(*old, bound); !done) co_return co_await undo(done.error());
  if (auto ro = co_await admin_.set_read_only(*old, true); !ro) co_return co_await undo(ro.error());
  auto final_position = co_await admin_.drain_writes(*old, bound);
  if (!final_position) co_return co_await undo(final_position.error());
  // 3. The candidate has all of it.
  if (auto caught_up = co_await admin_.wait_replayed(*candidate, *final_position, bound); !caught_up)
    co_return co_await undo(caught_up.error());
  // 4. Promote, publish, resume.
  auto timeline = co_await admin_.promote(*candidate);
  if (!timeline) co_return co_await undo(timeline.error());
  const auto promoted = clock::now();
  topology_record next = record_;
  next.epoch = record_.epoch + 1;
  next.primary = target;
  std::erase(next.fenced, target);
  fence_in(next.fenced, old->name);
  next.reason = "switchover from " + old->name + " to " + target + " at " + final_position->to_string();
  if (!co_await publish(next)) {
    (void)co_await request_pause(false);
    co_return tl::unexpected(std::string("the topology changed during the switchover"));
  }
  const auto published = clock::now();
  (void)co_await request_pause(false);
  spdlog::warn("switchover: epoch {}: {} is the primary (timeline {}); held {} ms", next.epoch, target, *timeline,
               ms_between(started, clock::now()));
  failover_timeline t;
  t.detected = started;
  t.promoted = promoted;
  t.published = published;
  t.from = old->name;
  t.to = target;
  t.timeline = *timeline;
  t.reason = next.reason;
  t.kind = "switchover";
  t.choice = "chosen by an operator";
  asio::co_spawn(monitor_.io(), finish_failover(std::move(t), next), asio::detached);
  co_return "epoch " + std::to_string(next.epoch) + ": " + target + " is the primary";
}

awaitable<tl::expected<std::string, std::string>> coordinator::request_promote(const std::string& target) {
  const auto* n = node(target);
  if (!n) co_return tl::unexpected("no node is named \"" + target + "\"");
  if (target == record_.primary) co_return tl::unexpected(target + " is the primary already");
  auto views = co_await collect_views();
  std::string why;
  const std::size_t regions = etcd_ ? settings_.regions : 1;
  // The primary counts as lost here as soon as a majority cannot reach it at all.
  if (!primary_lost(views, record_.primary, regions, std::chrono::milliseconds(0), why))
    co_return tl::unexpected("the primary " + record_.primary + " is reachable (" + why +
                             "): a promotion now would split the brain; use switchover");
  const auto epoch = record_.epoch;
  if (!etcd_) {
    co_await fail_over(views, "operator promote of " + target, target);
  } else {
    const std::string action = "promote";
    if (auto asked = co_await ask_leader(action, target); !asked) co_return tl::unexpected(asked.error());
  }
  // The leader takes it on its next round; wait for the new epoch to reach this Meridian.
  co_return co_await await_epoch_after(epoch, target);
}

awaitable<std::string> coordinator::status_json() {
  json out{{"region", settings_.region},
           {"id", settings_.id},
           {"coordination", etcd_ ? "etcd" : "alone"},
           {"leading", leading()},
           {"leader", election_ ? election_->leader() : settings_.id},
           {"paused", paused_},
           {"automatic_failover", settings_.automatic},
           {"topology", json::parse(record_.to_json())}};
  json views = json::array();
  for (const auto& v : co_await collect_views()) views.push_back(json::parse(v.to_json()));
  out["views"] = views;
  if (lease_) {
    const auto& a = lease_->state();
    const auto now = clock::now();
    const auto last = a.last_confirmed();
    out["write_authority"] = json{
        {"held", a.held(now)},
        {"epoch", a.epoch()},
        {"remaining_ms", a.held(now) ? ms_between(now, a.deadline()) : 0},
        {"last_confirmed_ms_ago", last == clock::time_point{} ? -1 : ms_between(last, now)},
        {"lapses", a.lapses()},
        {"ttl_ms", std::chrono::duration_cast<std::chrono::milliseconds>(settings_.lease_ttl).count()},
        {"margin_ms", settings_.authority_margin.count()}};
  } else {
    out["write_authority"] = json{{"held", true}, {"epoch", record_.epoch}, {"alone", true}};
  }
  if (etcd_) {
    // An ending of the epoch in force: a leader is about to promote, or waits for the primary.
    auto ending = co_await etcd_->get(ending_prefix_ + std::to_string(record_.epoch));
    if (ending && !ending->empty()) {
      json e = json::parse(ending->front().value, nullptr, false);
      if (!e.is_discarded()) out["ending"] = e;
    }
    auto last = co_await etcd_->get(status_key_);
    if (last && !last->empty()) {
      json f = json::parse(last->front().value, nullptr, false);
      if (!f.is_discarded()) out["last_failover"] = f;
    }
  }
  co_return out.dump();
}

awaitable<void> coordinator::fail_over(const std::vector<region_view>& views, const std::string& why,
                                       std::optional<std::string> operator_choice) {
  const auto detected = clock::now();
  released_at_ = {};
  const auto from = record_.primary;
  spdlog::warn("failover: {}", why);
  // A failover a previous leader started (its intent names the next epoch) is finished with
  // the same candidate, which it may already have promoted.
  std::optional<std::string> chosen = operator_choice;
  std::string reason = operator_choice ? "chosen by an operator" : "";
  std::optional<candidate_choice> weighed;  // the automatic choice, reported with the failover
  if (etcd_ && !chosen) {
    if (auto intent = co_await next_epoch_intent(record_.epoch); intent && *intent) {
      chosen = (*intent)->candidate;
      reason = "finishing the failover begun by " + (*intent)->leader;
    }
  }
  const bool finishing = reason.starts_with("finishing");
  // No promotion while a Meridian anywhere may still write to the old primary: first the
  // epoch's ending is committed, after which no renewal of its write authority succeeds; the
  // last one that did was sent before that commit and granted at most lease_ttl −
  // authority_margin from its sending; promotion waits lease_ttl + authority_margin from the
  // commit, a margin twice over for clock-rate drift.
  std::vector<region_view> seen = views;
  auto seen_at = detected;
  auto safe = detected;
  if (etcd_) {
    if (!co_await end_epoch(why)) co_return;
    safe = ending_committed_ + settings_.lease_ttl + settings_.authority_margin;
    if (const auto now = clock::now(); now < safe) {
      spdlog::warn("failover: waiting {} ms for write authority over epoch {} to end everywhere (lease_ttl + "
                   "authority_margin after its ending was committed), or until every holder released it",
                   ms_between(now, safe), record_.epoch);
      asio::co_spawn(monitor_.io(), watch_releases(++release_watch_, safe), asio::detached);
    }
  }
  std::vector<std::string> replicas;
  for (const auto& n : monitor_.current().nodes)
    if (!n.removed && n.name != record_.primary &&
        std::find(record_.fenced.begin(), record_.fenced.end(), n.name) == record_.fenced.end())
      replicas.push_back(n.name);
  if (!chosen) {
    auto candidates = settings_.candidates;
    for (const auto& n : monitor_.current().nodes) candidates.regions[n.name] = n.region;
    auto choice = choose_candidate(seen, replicas, record_.primary, candidates);
    if (!choice.node || choice.blocked) {
      if (choice.reason != last_reported_) spdlog::error("failover: not promoting: {}", choice.reason);
      last_reported_ = choice.reason;
      const std::string status = json{{"state", choice.blocked ? "blocked" : "no candidate"},
                                      {"reason", choice.reason},
                                      {"epoch", record_.epoch}}.dump();
      co_await record_status(status);
      co_return;
    }
    chosen = *choice.node;
    reason = choice.reason;
    weighed = std::move(choice);
  }
  // The nearest lacks WAL a farther replica received: it streams it from that one first, so
  // that nothing forks and nothing the other received is lost; if it cannot in time, the
  // farther one is promoted.
  std::optional<std::string> caught_up_from;
  if (weighed && weighed->catch_up_from) {
    const auto* target = node(*chosen);
    const auto* source = node(*weighed->catch_up_from);
    const auto started = clock::now();
    auto caught = target && source ? co_await admin_.catch_up(*target, *source, weighed->catch_up_to)
                                   : tl::expected<void, std::string>(tl::unexpect, "unknown node");
    if (caught) {
      caught_up_from = *weighed->catch_up_from;
      spdlog::warn("failover: {} caught up to {} from {} in {} ms", *chosen, weighed->catch_up_to.to_string(),
                   *caught_up_from, ms_between(started, clock::now()));
    } else {
      spdlog::error("failover: {} could not catch up from {} ({}): promoting {} instead", *chosen,
                    *weighed->catch_up_from, caught.error(), *weighed->catch_up_from);
      chosen = *weighed->catch_up_from;
      reason = *chosen + " is the most caught-up replica (the nearer " + weighed->node.value_or("") +
               " could not catch up from it: " + caught.error() + ")";
    }
  }
  // The views are read again as the wait runs out, timed to end with it (twice the round trips
  // the last reading took), so that the promotion follows the wait at once, on what was seen
  // at its end: the primary may be back, a replica further on.
  if (etcd_ && clock::now() < safe) {
    // Every holder's release ends the wait early: none of them will write to the old primary.
    const auto until = safe - 2 * views_took_;
    while (released_at_ == clock::time_point{} && clock::now() < until && leading())
      co_await pause_until(std::min(until, clock::now() + settings_.interval / 5));
    ++release_watch_;  // the watch ends
    if (released_at_ != clock::time_point{}) safe = clock::now();
    if (!leading()) co_return;  // the next leader finds the ending and decides
    seen = co_await collect_views();
    seen_at = clock::now();
    std::string still;
    if (!operator_choice && !finishing &&
        !primary_lost(seen, record_.primary, settings_.regions, settings_.detection, still,
                      settings_.detection_refused)) {
      spdlog::warn("failover: not promoting: the primary is reachable again ({})", still);
      if (caught_up_from) {
        // It streams from the other replica: back to the primary.
        const auto* target = node(*chosen);
        const auto* primary = node(record_.primary);
        if (target && primary)
          if (auto back = co_await admin_.repoint(*target, *primary); !back)
            spdlog::error("failover: {} does not stream from {} again: {}", *chosen, record_.primary, back.error());
      }
      co_await give_up_ending(still);
      co_return;
    }
  }
  if (etcd_ && !finishing) {
    const std::string intent = json{{"epoch", record_.epoch + 1}, {"candidate", *chosen}, {"leader", settings_.id}}.dump();
    if (auto p = co_await etcd_->put(intent_key_, intent); !p) {
      spdlog::error("failover: cannot record the intent: {}", p.error());
      co_return;
    }
  }
  if (etcd_) {
    co_await pause_until(safe);
    if (!leading()) co_return;
  }
  const auto* candidate = node(*chosen);
  if (!candidate) co_return;
  // Replicas that received more than the one promoted (an operator's choice, or a nearer one
  // within failover.prefer_ahead) cannot follow its timeline without a rewind.
  // (One that caught up has what the other received: only replicas ahead of that one.)
  const auto diverged = ahead_of(seen, replicas, record_.primary, caught_up_from.value_or(*chosen));
  if (!diverged.empty())
    spdlog::warn("failover: {} replica(s) received more than {}: fenced until rejoined (failover.rejoin_command)",
                 diverged.size(), *chosen);
  // The rest of the window, which no view can measure: how long the old primary may have taken
  // writes that no replica received, from when the majority lost sight of it (a replication
  // link cut with it) until its write authority had ended everywhere, lease_ttl − margin after
  // the ending's commit at the latest. An upper bound (plus one view interval of imprecision).
  long long blind_ms = -1;
  if (etcd_) {
    std::int64_t unseen = 0;
    for (const auto& v : seen)
      if (auto it = v.nodes.find(record_.primary); it != v.nodes.end() && it->second.probed && !it->second.reachable)
        unseen = std::max(unseen, it->second.unreachable_ms);
    const auto lost_sight = seen_at - std::chrono::milliseconds(unseen) - settings_.interval;
    const auto authority_end = ending_committed_ + settings_.lease_ttl - settings_.authority_margin;
    blind_ms = std::max<long long>(0, ms_between(lost_sight, authority_end));
  }
  if (weighed)
    spdlog::warn("failover: candidates weighed: {}; chosen {}; async window at promotion: {} bytes of WAL the primary "
                 "was last seen to have beyond it, {}, and up to {} ms in which it may have acknowledged writes after "
                 "the majority lost sight of it (acknowledged writes in either may be lost)",
                 describe(weighed->candidates), *chosen, weighed->loss_bytes,
                 weighed->window_ms ? std::to_string(*weighed->window_ms) + " ms of lag as last measured" : "lag unknown",
                 blind_ms);
  spdlog::warn("failover: promoting {} ({})", *chosen, reason);
  auto timeline = co_await admin_.promote(*candidate);
  if (!timeline) {
    spdlog::error("failover: promotion failed: {}", timeline.error());
    co_return;
  }
  const auto promoted = clock::now();
  if (etcd_)
    spdlog::warn("failover: {} promoted {} ms after the ending of epoch {} was committed", *chosen,
                 ms_between(ending_committed_, promoted), record_.epoch);
  topology_record next = record_;
  next.epoch = record_.epoch + 1;
  next.primary = *chosen;
  std::erase(next.fenced, *chosen);
  fence_in(next.fenced, from);
  // Replicas that had received more than the new primary cannot follow its timeline: like the
  // old primary, nothing goes to them until they rejoin (rewound).
  for (const auto& d : diverged) fence_in(next.fenced, d);
  next.reason = why;
  if (!co_await publish(next)) co_return;
  const auto published = clock::now();
  if (etcd_) (void)co_await etcd_->erase(intent_key_);  // the new epoch carries it now
  spdlog::warn("failover: epoch {}: {} is the primary (timeline {}), {} fenced", next.epoch, next.primary, *timeline, from);
  // The other replicas follow the new primary, concurrently and off the leader's loop: with
  // command hooks (RDS recreates cross-region replicas) this can take many minutes, and the
  // leader must meanwhile keep watching the new primary.
  failover_timeline t;
  t.detected = detected;
  t.ending = etcd_ ? ending_committed_ : detected;
  if (etcd_ && released_at_ != clock::time_point{}) t.released_ms = ms_between(ending_committed_, released_at_);
  t.promoted = promoted;
  t.published = published;
  t.from = from;
  t.to = next.primary;
  t.timeline = *timeline;
  t.reason = why;
  if (!operator_choice) {
    std::string without_refusals;
    t.detection_ms = primary_lost(views, from, etcd_ ? settings_.regions : 1, settings_.detection, without_refusals)
                         ? settings_.detection.count()
                         : settings_.detection_refused.count();
  }
  t.kind = operator_choice ? "operator promote" : "failover";
  t.choice = reason;
  t.caught_up_from = caught_up_from.value_or("");
  if (weighed) {
    json candidates = json::array();
    for (const auto& c : weighed->candidates) {
      json j{{"node", c.node}, {"rank", c.rank}, {"received", c.position.to_string()}, {"behind_bytes", c.behind_bytes}};
      if (c.lag_ms) j["lag_ms"] = *c.lag_ms;
      if (c.distance_us) j["distance_ms"] = static_cast<double>(*c.distance_us) / 1000.0;
      candidates.push_back(std::move(j));
    }
    t.candidates = candidates.dump();
    t.window_bytes = static_cast<long long>(weighed->loss_bytes);
    t.window_ms = weighed->window_ms.value_or(-1);
    t.blind_ms = blind_ms;
    auto decided = *weighed;
    decided.node = *chosen;  // the farther one, when the nearer could not catch up from it
    if (on_failover_)
      on_failover_(decided, blind_ms >= 0 ? std::optional<std::int64_t>(blind_ms) : std::nullopt);
  }
  asio::co_spawn(monitor_.io(), finish_failover(std::move(t), next), asio::detached);
}

awaitable<void> coordinator::finish_failover(failover_timeline t, topology_record next) {
  const auto* primary = node(next.primary);
  auto pending = std::make_shared<std::size_t>(0);
  auto errors = std::make_shared<std::vector<std::string>>();
  const bool resumed = !t.begun_by.empty();
  json status{{"kind", t.kind},
              {"epoch", next.epoch},
              {"from", t.from},
              {"to", t.to},
              {"timeline", t.timeline},
              {"reason", t.reason},
              {"choice", t.choice},
              {"leader", settings_.id},
              {"detection_ms", t.kind == "failover" ? t.detection_ms : 0},
              {"promote_ms", resumed ? t.carried_promote_ms : ms_between(t.detected, t.promoted)},
              {"publish_ms", resumed ? t.carried_publish_ms : ms_between(t.detected, t.published)}};
  if (resumed) status["begun_by"] = t.begun_by;
  // How long after the old epoch's ending the promotion came: at least lease_ttl + margin,
  // unless every holder of write authority released it first (released_ms).
  if (!resumed && etcd_ && t.kind != "switchover") status["ending_to_promote_ms"] = ms_between(t.ending, t.promoted);
  if (t.released_ms >= 0) status["released_ms"] = t.released_ms;
  if (!t.candidates.empty()) status["candidates"] = json::parse(t.candidates, nullptr, false);
  if (t.window_bytes >= 0) status["window_bytes"] = t.window_bytes;
  if (t.window_ms >= 0) status["window_ms"] = t.window_ms;
  if (t.blind_ms >= 0) status["blind_ms"] = t.blind_ms;
  status["state"] = "repointing";
  const std::string repointing = status.dump();
  co_await record_status(repointing);
  asio::steady_timer all_done(monitor_.io(), clock::time_point::max());
  for (const auto& n : monitor_.current().nodes) {
    if (n.removed || n.name == next.primary || std::find(next.fenced.begin(), next.fenced.end(), n.name) != next.fenced.end()) continue;
    ++*pending;
    asio::co_spawn(monitor_.io(), admin_.repoint(n, *primary),
                   [&all_done, pending, errors, name = n.name, to = next.primary](std::exception_ptr e,
                                                                                  tl::expected<void, std::string> r) {
                     if (e) {
                       errors->push_back(name + ": failed");
                     } else if (!r) {
                       spdlog::error("failover: repointing {}: {}", name, r.error());
                       errors->push_back(r.error());
                     } else {
                       spdlog::info("failover: {} streams from {}", name, to);
                     }
                     if (--*pending == 0) all_done.cancel();
                   });
  }
  if (*pending > 0) {
    error_code ec;
    co_await all_done.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  const auto repointed = clock::now();
  // The slot the new primary streamed from while it caught up would keep WAL on that replica.
  if (!t.caught_up_from.empty()) {
    if (const auto* source = node(t.caught_up_from)) co_await admin_.drop_catch_up_slot(*primary, *source);
    status["caught_up_from"] = t.caught_up_from;
  }
  co_await fence_old_primaries();
  status["state"] = "done";
  // Measured from detection, or, by a leader that took over, from the takeover.
  status[resumed ? "repoint_after_takeover_ms" : "repoint_ms"] = ms_between(t.detected, repointed);
  status["repoint_errors"] = *errors;
  const std::string done = status.dump();
  spdlog::warn("failover: done: {}", done);
  co_await record_status(done);
}

awaitable<void> coordinator::resume_unfinished() {
  if (!etcd_) co_return;
  auto last = co_await etcd_->get(status_key_);
  if (!last || last->empty()) co_return;
  json j = json::parse(last->front().value, nullptr, false);
  if (j.is_discarded() || j.value("state", std::string()) != "repointing") co_return;
  const auto begun_by = j.value("leader", std::string());
  if (j.value("epoch", std::uint64_t{0}) != record_.epoch || j.value("to", std::string()) != record_.primary ||
      begun_by == settings_.id)
    co_return;
  failover_timeline t;
  t.detected = t.promoted = t.published = clock::now();
  t.from = j.value("from", std::string());
  t.to = record_.primary;
  t.timeline = j.value("timeline", std::uint32_t{0});
  t.reason = j.value("reason", std::string());
  t.kind = j.value("kind", std::string("failover"));
  t.choice = j.value("choice", std::string());
  t.begun_by = begun_by;
  t.carried_promote_ms = j.value("promote_ms", -1LL);
  t.carried_publish_ms = j.value("publish_ms", -1LL);
  if (j.contains("candidates")) t.candidates = j["candidates"].dump();
  t.window_bytes = j.value("window_bytes", -1LL);
  t.window_ms = j.value("window_ms", -1LL);
  t.blind_ms = j.value("blind_ms", -1LL);
  spdlog::warn("failover: epoch {} was left repointing by {}: finishing it", record_.epoch, begun_by);
  asio::co_spawn(monitor_.io(), finish_failover(std::move(t), record_), asio::detached);
}

awaitable<tl::expected<std::optional<coordinator::failover_intent>, std::string>> coordinator::next_epoch_intent(
    std::uint64_t epoch) {
  auto found = co_await etcd_->get(intent_key_);
  if (!found) co_return tl::unexpected(found.error());
  if (found->empty()) co_return std::optional<failover_intent>{};
  json j = json::parse(found->front().value, nullptr, false);
  if (j.is_discarded() || j.value("epoch", std::uint64_t{0}) != epoch + 1) co_return std::optional<failover_intent>{};
  co_return failover_intent{j.value("candidate", std::string()), j.value("leader", std::string("another Meridian"))};
}

awaitable<bool> coordinator::end_epoch(const std::string& why) {
  if (!etcd_ || ending_epoch_ == record_.epoch) co_return true;
  const auto epoch = record_.epoch;
  const std::string ending = ending_prefix_ + std::to_string(epoch);
  const std::string value = json{{"epoch", epoch}, {"leader", settings_.id}, {"why", why}}.dump();
  // Only over the record this leader decided on: a concurrent change of epoch wins.
  std::vector<etcd_compare> unchanged{{topology_key_, etcd_compare::target::mod_revision, record_revision_, {}}};
  std::vector<etcd_op> write{{etcd_op::kind::put, ending, value, 0, false}, {etcd_op::kind::get, ending, {}, 0, false}};
  auto r = co_await etcd_->txn(std::move(unchanged), std::move(write), {});
  if (!r || !r->succeeded) {
    spdlog::error("failover: cannot end epoch {}: {}", epoch, r ? "the topology changed meanwhile" : r.error());
    co_return false;
  }
  ending_revision_ = !r->ranges.empty() && !r->ranges[0].empty() ? r->ranges[0].front().create_revision : 0;
  // Stamped once the commit is known: later than the commit itself, so waits counted from it
  // are never short.
  ending_epoch_ = epoch;
  ending_committed_ = clock::now();
  spdlog::warn("failover: ending epoch {} ({}): write authority over {} is renewed nowhere from now on; no promotion "
               "for {} ms",
               epoch, why, record_.primary, (settings_.lease_ttl + settings_.authority_margin).count());
  co_return true;
}

awaitable<void> coordinator::give_up_ending(const std::string& why) {
  if (!etcd_ || ending_epoch_ == 0) co_return;
  // Not while a failover is under way: its intent names the next epoch, and it goes on.
  auto intent = co_await next_epoch_intent(ending_epoch_);
  if (!intent || *intent) co_return;
  const auto epoch = ending_epoch_;
  if (auto r = co_await etcd_->erase(ending_prefix_ + std::to_string(epoch)); !r) {
    spdlog::error("failover: cannot give up the ending of epoch {}: {}", epoch, r.error());
    co_return;
  }
  ending_epoch_ = 0;
  spdlog::warn("failover: epoch {} goes on ({}): write authority is renewed again", epoch, why);
}

awaitable<void> coordinator::adopt_ending() {
  if (!etcd_) co_return;
  auto found = co_await etcd_->get(ending_prefix_ + std::to_string(record_.epoch));
  if (!found || found->empty()) co_return;
  // Committed by a previous leader at some time before now: counting from now is never short.
  ending_epoch_ = record_.epoch;
  ending_committed_ = clock::now();
  ending_revision_ = found->front().create_revision;
  spdlog::warn("failover: epoch {} is being ended ({}): this leader carries on from there", record_.epoch,
               found->front().value);
}

awaitable<void> coordinator::watch_releases(std::uint64_t generation, clock::time_point until) {
  if (!etcd_ || ending_revision_ == 0) co_return;
  // One read of the epoch's keys: every registration and release (one round trip to etcd's
  // leader, which may be a region away, per look).
  const auto epoch = ending_epoch_;
  const auto epoch_at = authority_epoch_key(authority_prefix_, epoch);
  const auto holders_at = holder_key(authority_prefix_, epoch);
  const auto released_at = release_key(authority_prefix_, epoch, ending_revision_);
  while (generation == release_watch_ && clock::now() < until && leading()) {
    auto found = co_await etcd_->get(epoch_at, true);
    if (generation != release_watch_) co_return;
    if (found) {
      std::vector<std::string> h, r;
      for (const auto& kv : *found) {
        if (kv.key.starts_with(holders_at)) h.push_back(kv.key.substr(holders_at.size()));
        if (kv.key.starts_with(released_at)) r.push_back(kv.key.substr(released_at.size()));
      }
      if (every_holder_released(h, r)) {
        released_at_ = clock::now();
        spdlog::warn("failover: every Meridian that held write authority over epoch {} released it ({} of them), "
                     "{} ms after its ending",
                     epoch, h.size(), ms_between(ending_committed_, released_at_));
        co_return;
      }
    }
    co_await pause_until(std::min(until, clock::now() + settings_.interval / 5));
  }
}

awaitable<bool> coordinator::publish(const topology_record& next) {
  if (!etcd_) {
    apply(next, 0);
    co_return true;
  }
  // Only over the record this leader based its decision on: a concurrent change wins.
  std::vector<etcd_compare> unchanged{{topology_key_, etcd_compare::target::mod_revision, record_revision_, {}}};
  // The ending of the epoch replaced goes with it: renewals of the next one never see it.
  // So do its holders' registrations and releases.
  std::vector<etcd_op> write{{etcd_op::kind::put, topology_key_, next.to_json(), 0, false},
                             {etcd_op::kind::erase, ending_prefix_ + std::to_string(record_.epoch), {}, 0, false},
                             {etcd_op::kind::erase, authority_epoch_key(authority_prefix_, record_.epoch), {}, 0, true}};
  auto r = co_await etcd_->txn(std::move(unchanged), std::move(write), {});
  if (!r || !r->succeeded) {
    spdlog::error("failover: publishing epoch {} failed: {}", next.epoch, r ? "the topology changed meanwhile" : r.error());
    co_return false;
  }
  apply(next, r->revision);
  co_return true;
}

awaitable<void> coordinator::fence_old_primaries() {
  if (record_.fenced.empty() || clock::now() - last_fence_attempt_ < std::chrono::seconds(1)) co_return;
  last_fence_attempt_ = clock::now();
  const auto& topo = monitor_.current();
  for (const auto& name : record_.fenced) {
    const auto* n = node(name);
    if (!n) continue;
    const auto& h = topo.state(n->id).health;
    if (!h.probed || !h.reachable || h.in_recovery) continue;  // down, or already a replica
    const auto done = std::to_string(record_.epoch) + "/" + name;
    if (fenced_.count(done)) continue;  // fenced in this epoch already (a command runs once)
    auto f = co_await admin_.fence(*n);
    if (f && *f) fenced_.insert(done);
    if (!f) {
      spdlog::error("failover: fencing {}: {}", name, f.error());
    } else if (*f) {
      spdlog::warn("failover: {} came back as a primary; fenced (read-only, sessions terminated)", name);
    }
  }
}

awaitable<void> coordinator::record_status(const std::string& status) {
  if (etcd_) (void)co_await etcd_->put(status_key_, status);
}

}  // namespace meridian::failover
