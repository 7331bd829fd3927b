import os
import subprocess
import sys

from media_tasks import media

import taskmill as tm

if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[media], workers=1) as scheduler:
        producer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "producer.py")
        subprocess.run([sys.executable, producer, "tasks.db"], check=True)  # wakes the supervisor on commit
        scheduler.wait_until_idle()
        print([(r.task_id, r.status) for r in scheduler.history(limit=2)])
