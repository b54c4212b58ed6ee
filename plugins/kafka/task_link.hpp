// What a task's Kafka sink needs from the same task's Kafka source for exactly-once
// (Kafka transactions): the consumer, for its group metadata and committed offsets, and
// a flag telling the source that the sink commits offsets inside its transactions (the
// source must then not commit them itself: an asynchronous commit landing after a later
// transaction would move the group's offsets back).
//
// Both stages live in this plugin; they meet by (pipeline, task). The link is shared:
// whichever stage goes first keeps it alive, and the source clears `consumer` before it
// destroys it, so the sink never uses a consumer that is gone.
#pragma once
#include <librdkafka/rdkafka.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace pipehost::kafka {

struct TaskLink {
  std::mutex mutex;
  rd_kafka_t* consumer = nullptr;  // set by the source while it runs
  bool offsets_in_transactions = false;
};

std::shared_ptr<TaskLink> task_link(std::string_view pipeline, int task);

}  // namespace pipehost::kafka
