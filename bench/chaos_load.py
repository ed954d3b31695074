#!/usr/bin/env python3
"""Steady load for bench/chaos.sh, and its report.

  chaos_load.py load URL COOKIES_FILE SECONDS WORKERS OUT
      WORKERS threads send GET URL over kept-alive connections for SECONDS,
      each with one of the session cookies in COOKIES_FILE (one `Cookie:`
      header value per line, re-read every second so a new login takes
      effect), and write one line per answer to OUT: seconds since the
      start and the status (0: no answer, connection refused or reset).

  chaos_load.py report OUT PHASES
      PHASES has one line per fault: name, then the seconds since the load
      started at which the phase began, the fault was injected, the faulty
      component was back (restarted, or the failover done), and the phase
      ended. Prints, per phase: answers by status, the window in which
      answers failed, how long after the component was back the failures
      stopped, and the answers that mean a lost session (302 to log in).
"""

import http.client
import sys
import threading
import time
import urllib.parse


def load(url, cookies_file, seconds, workers, out):
    target = urllib.parse.urlsplit(url)
    path = target.path or "/"
    cookies = [""]
    stop = time.monotonic() + seconds
    start = time.monotonic()
    results = []
    lock = threading.Lock()

    def read_cookies():
        while time.monotonic() < stop:
            try:
                with open(cookies_file, encoding="utf-8") as f:
                    lines = [l.strip() for l in f if l.strip()]
                if lines:
                    cookies[:] = lines
            except OSError:
                pass
            time.sleep(1)

    def worker(i):
        conn = None
        mine = []
        while time.monotonic() < stop:
            if conn is None:
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
            cookie = cookies[i % len(cookies)]
            try:
                conn.request("GET", path, headers={"Cookie": cookie, "Accept": "text/html"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = None
                time.sleep(0.01)
            mine.append((time.monotonic() - start, status))
        with lock:
            results.extend(mine)

    with open(cookies_file, encoding="utf-8") as f:
        cookies[:] = [l.strip() for l in f if l.strip()] or [""]
    threading.Thread(target=read_cookies, daemon=True).start()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.sort()
    with open(out, "w", encoding="utf-8") as f:
        for t, s in results:
            f.write(f"{t:.4f} {s}\n")


def report(out, phases_file):
    answers = []
    with open(out, encoding="utf-8") as f:
        for line in f:
            t, s = line.split()
            answers.append((float(t), int(s)))
    print("| Phase | Answers by status | Failures from … to (s into the phase) | "
          "Longest failure window | All 200 again after the component was back | Lost sessions (302) |")
    print("|---|---|---|---|---|---|")
    with open(phases_file, encoding="utf-8") as f:
        for line in f:
            name, begin, fault, back, end = line.split()
            begin, fault, back, end = float(begin), float(fault), float(back), float(end)
            mine = [(t, s) for t, s in answers if begin <= t < end]
            counts = {}
            for _, s in mine:
                counts[s] = counts.get(s, 0) + 1
            failed = [t for t, s in mine if s != 200]
            window = longest_window(mine)
            if failed:
                span = f"{failed[0] - begin:.1f} … {failed[-1] - begin:.1f}"
                recovered = max(0.0, failed[-1] - back)
                recovery = f"{recovered:.2f} s"
            else:
                span, recovery = "none", "no failures"
            by_status = ", ".join(f"{s or 'no answer'}: {n}" for s, n in sorted(counts.items()))
            print(f"| {name} | {by_status} | {span} | {window:.2f} s | {recovery} | {counts.get(302, 0)} |")


def longest_window(answers):
    """The longest time between a failed answer and the next 200."""
    longest, since = 0.0, None
    for t, s in answers:
        if s != 200 and since is None:
            since = t
        elif s == 200 and since is not None:
            longest = max(longest, t - since)
            since = None
    if since is not None and answers:
        longest = max(longest, answers[-1][0] - since)
    return longest


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    elif sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
