#include "submission/queue/group_commit.hpp"

#include <algorithm>
#include <utility>

#include "submission/runtime/background_threads.hpp"

namespace truefrom::queue {

GroupCommit::GroupCommit(SegmentLog& log, std::chrono::microseconds gather_delay)
    : log_(log), gather_delay_(gather_delay) {}

GroupCommit::~GroupCommit() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& p : pending_) {  // only when the thread never started
    if (p.written) log_.finish(p.written->id);
    p.done("the queue is shutting down");
  }
  for (const auto& id : done_) log_.finish(id);
  log_.sweep();
}

void GroupCommit::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    // Background work like the worker pool's (see runtime/background_threads.hpp); where
    // the system refuses, the serve command has said so for the workers already.
    (void)runtime::mark_background_thread();
    run();
  });
}

void GroupCommit::commit(SegmentLog::Written written, Done done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      pending_.push_back(Pending{std::move(written), {}, {}, std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  log_.finish(written.id);
  log_.sweep();
  done("the queue is shutting down");
}

void GroupCommit::store(MessageInfo info, std::vector<std::string_view> parts, Done done,
                        bool announced) {
  {
    std::lock_guard lock(mutex_);
    if (announced && coming_ > 0) --coming_;
    if (!stopping_) {
      pending_.push_back(Pending{std::nullopt, std::move(info), std::move(parts), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done("the queue is shutting down");
}

void GroupCommit::announce() {
  std::lock_guard lock(mutex_);
  ++coming_;
}

void GroupCommit::withdraw() {
  std::lock_guard lock(mutex_);
  if (coming_ > 0) --coming_;
  wake_.notify_one();
}

bool GroupCommit::finish_later(const std::string& id) {
  std::lock_guard lock(mutex_);
  if (stopping_) return false;
  // One wake-up for a run of marks: the thread writes them before its next sync, or after
  // kMarkDelay when no commit comes.
  done_.push_back(id);
  if (done_.size() == 1) wake_.notify_one();
  return true;
}

void GroupCommit::append_stored(std::vector<Pending>& batch, std::size_t first,
                                std::vector<std::string>& errors) {
  for (std::size_t i = first; i < batch.size(); ++i) {
    if (!batch[i].written) batch[i].written = log_.append(batch[i].info, batch[i].parts, errors[i]);
  }
}

// Everything written while the previous batch was syncing goes out with one fdatasync per
// segment involved (almost always one).
void GroupCommit::run() {
  for (;;) {
    std::vector<Pending> batch;
    std::vector<std::string> done;
    {
      std::unique_lock lock(mutex_);
      const auto due = [this] { return stopping_ || !pending_.empty(); };
      wake_.wait(lock, [&] { return due() || !done_.empty(); });
      if (!due()) wake_.wait_for(lock, kMarkDelay, due);  // marks only: gather some more
      if (pending_.empty() && done_.empty()) return;      // stopping, nothing left
      batch.swap(pending_);
      done.swap(done_);
    }
    // Done marks first: the sync below carries them to the disk too.
    for (const auto& id : done) log_.finish(id);  // swept below
    std::vector<std::string> errors(batch.size());
    append_stored(batch, 0, errors);
    // Announced messages arriving within gather_delay_ join this batch.
    const auto gather_until = std::chrono::steady_clock::now() + gather_delay_;
    while (!batch.empty()) {
      std::vector<Pending> more;
      {
        std::unique_lock lock(mutex_);
        const auto ready = [this] { return stopping_ || coming_ == 0 || !pending_.empty(); };
        if (coming_ == 0 || stopping_) break;
        if (!wake_.wait_until(lock, gather_until, ready) || pending_.empty()) break;
        more.swap(pending_);
      }
      const std::size_t first = batch.size();
      for (auto& p : more) batch.push_back(std::move(p));
      errors.resize(batch.size());
      append_stored(batch, first, errors);
    }
    std::vector<std::pair<const Segment*, std::string>> synced;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!batch[i].written) continue;  // the append failed: errors[i] says why
      Segment* seg = batch[i].written->segment.get();
      auto it = std::find_if(synced.begin(), synced.end(),
                             [seg](const auto& s) { return s.first == seg; });
      if (it == synced.end()) {
        std::string e;
        log_.sync(*seg, e);
        it = synced.insert(synced.end(), {seg, e});
      }
      errors[i] = it->second;
      log_.settle(*batch[i].written, errors[i].empty());
    }
    log_.sweep();
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(errors[i]);
  }
}

}  // namespace truefrom::queue
