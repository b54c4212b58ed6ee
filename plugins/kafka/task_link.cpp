#include "task_link.hpp"

#include <map>

namespace pipehost::kafka {

std::shared_ptr<TaskLink> task_link(std::string_view pipeline, int task) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<TaskLink>> links;
  std::lock_guard lock(mutex);
  std::erase_if(links, [](const auto& entry) { return entry.second.expired(); });
  auto& entry = links[std::string(pipeline) + "#" + std::to_string(task)];
  auto link = entry.lock();
  if (!link) entry = link = std::make_shared<TaskLink>();
  return link;
}

}  // namespace pipehost::kafka
