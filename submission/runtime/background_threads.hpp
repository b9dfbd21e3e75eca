// Background threads: the worker pool and the spool's commit thread do the throughput work
// an I/O thread hands them (signing, queries, password hashes, appends and syncs). Linux
// runs them as SCHED_BATCH: a background thread that is woken does not preempt the thread
// that woke it, so an I/O thread finishes what it has at hand (further sessions, the relay)
// before the job it queued runs, instead of being switched out and back for every job.
// Where both share a CPU this halves the context switches per message; on an idle CPU the
// job starts at once as before. Their share of the CPU is unchanged (same nice value).
// The worker pool is marked with mark_background_pool() (on_workers.hpp). Standard library
// and POSIX only: the spool's fuzz target compiles this in.
// Thread-safety: each function reads or changes the calling thread only.
#pragma once

#include <string>

namespace truefrom::runtime {

/// Marks the calling thread as background work. Returns "" or why the system refused
/// (the thread then runs as before: the policy changes only the scheduling, never results).
std::string mark_background_thread();

/// Whether the calling thread runs as background work.
bool is_background_thread();

}  // namespace truefrom::runtime
