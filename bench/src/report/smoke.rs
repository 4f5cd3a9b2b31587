//! What a smoke run judges: every failure a scenario can count, never its speed. A scenario
//! that cannot go on (a refused upload, a task that did not succeed, a crawl that fetched less
//! than asked) stops the run with an error that names it instead.

use super::Report;
use crate::trigger::TriggerResult;

/// A problem line for each load with failed requests.
fn load_problems<'a>(scenario: &str, runs: impl IntoIterator<Item = &'a TriggerResult>, problems: &mut Vec<String>) {
    for run in runs {
        if run.errors + run.socket_errors > 0 {
            problems.push(format!(
                "{scenario}: {}: {} non-2xx answers, {} socket errors",
                run.server, run.errors, run.socket_errors
            ));
        }
    }
}

impl Report {
    /// Failures a smoke run must not have, one line each naming the scenario and the figure.
    pub fn smoke_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        load_problems("trigger", &self.trigger, &mut problems);
        load_problems("accept", &self.accept, &mut problems);
        if let Some(r) = &self.restart {
            for (start, compilations) in r.compilations.iter().enumerate().filter(|(_, c)| **c > 0) {
                problems.push(format!(
                    "restart: {compilations} compilations at restart {} (a restart must reuse every compiled artifact)",
                    start + 1
                ));
            }
        }
        for run in self.crawl.iter().flat_map(|c| &c.runs).filter(|run| run.failed > 0) {
            problems.push(format!(
                "crawl: {} at concurrency {}: {} of {} fetches failed",
                run.client,
                run.concurrency,
                run.failed,
                run.fetched + run.failed
            ));
        }
        if let Some(h) = &self.hotswap {
            load_problems("hotswap", h.steady.iter().chain(&h.swapping), &mut problems);
            if h.failed_uploads > 0 {
                problems.push(format!("hotswap: {} of {} uploads failed", h.failed_uploads, h.upload_ms.len()));
            }
        }
        for s in self.sleepers.iter().filter(|s| s.succeeded != s.count) {
            problems.push(format!("sleepers: {} of {} sleeping tasks succeeded", s.succeeded, s.count));
        }
        if let Some(g) = &self.guests {
            load_problems("guests", g.trigger.iter().map(|(_, run)| run), &mut problems);
            for (language, s) in g.sleepers.iter().filter(|(_, s)| s.succeeded != s.count) {
                problems.push(format!(
                    "guests: {} of {} sleeping {} tasks succeeded",
                    s.succeeded,
                    s.count,
                    language.name()
                ));
            }
        }
        if let Some(c) = &self.chaos {
            load_problems("chaos", c.direct.iter().chain(&c.through), &mut problems);
        }
        if let Some(h) = &self.hostile {
            load_problems("hostile", h.alone.iter().chain(&h.beside_hostile), &mut problems);
            for (kind, run) in h.per_kind.iter().filter(|(_, run)| run.errors + run.socket_errors > 0) {
                problems.push(format!(
                    "hostile: beside {kind} only: {} non-2xx answers, {} socket errors",
                    run.errors, run.socket_errors
                ));
            }
            if h.hostile_tasks == 0 {
                problems.push("hostile: no hostile task ran beside the load".to_owned());
            }
            if h.hostile_unanswered > 0 {
                problems.push(format!(
                    "hostile: {} of {} hostile tasks got no answer (the host must answer each, with its error)",
                    h.hostile_unanswered, h.hostile_tasks
                ));
            }
            let internal: u64 = h.hostile_statuses.iter().filter(|(status, _)| **status == 500).map(|(_, n)| n).sum();
            if internal > 0 {
                problems.push(format!(
                    "hostile: {internal} hostile tasks answered 500 (an error of the host, not of the task)"
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::Report;
    use crate::report::fixture::{clean, crawl, hostile, sleepers};

    /// The problems of a clean report changed by `change`: each must name its scenario.
    fn problems_after(change: impl FnOnce(&mut Report)) -> Vec<String> {
        let mut report = clean(false);
        change(&mut report);
        report.smoke_problems()
    }

    fn one_naming(problems: &[String], scenario: &str, figure: &str) {
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with(&format!("{scenario}: ")), "{problems:?}");
        assert!(problems[0].contains(figure), "{problems:?}");
    }

    #[test]
    fn a_clean_run_has_no_problem() {
        assert_eq!(clean(false).smoke_problems(), Vec::<String>::new());
    }

    #[test]
    fn failed_requests_of_every_load_are_problems() {
        one_naming(&problems_after(|r| r.trigger[0].errors = 3), "trigger", "3 non-2xx");
        one_naming(&problems_after(|r| r.trigger[1].socket_errors = 2), "trigger", "2 socket errors");
        one_naming(&problems_after(|r| r.accept[0].errors = 1), "accept", "1 non-2xx");
        one_naming(&problems_after(|r| r.hotswap.as_mut().unwrap().swapping[0].errors = 4), "hotswap", "4 non-2xx");
        one_naming(&problems_after(|r| r.chaos.as_mut().unwrap().through[0].socket_errors = 5), "chaos", "5 socket");
        one_naming(&problems_after(|r| r.hostile = Some(hostile(0, &[(502, 1)], 7))), "hostile", "7 non-2xx");
        one_naming(&problems_after(|r| r.hostile.as_mut().unwrap().per_kind[0].1.errors = 6), "hostile", "6 non-2xx");
    }

    #[test]
    fn a_compilation_at_restart_is_a_problem() {
        one_naming(
            &problems_after(|r| r.restart.as_mut().unwrap().compilations = vec![0, 2]),
            "restart",
            "2 compilations at restart 2",
        );
    }

    #[test]
    fn failed_fetches_tasks_and_uploads_are_problems() {
        one_naming(&problems_after(|r| r.crawl = Some(crawl(3))), "crawl", "3 of 2000 fetches failed");
        one_naming(&problems_after(|r| r.sleepers = vec![sleepers(1000, 998)]), "sleepers", "998 of 1000");
        one_naming(&problems_after(|r| r.hotswap.as_mut().unwrap().failed_uploads = 1), "hotswap", "1 of 1 uploads");
    }

    #[test]
    fn hostile_tasks_without_an_answer_or_with_an_internal_error_are_problems() {
        one_naming(&problems_after(|r| r.hostile = Some(hostile(2, &[(502, 1)], 0))), "hostile", "2 of 40");
        one_naming(
            &problems_after(|r| r.hostile = Some(hostile(0, &[(500, 3)], 0))),
            "hostile",
            "3 hostile tasks answered 500",
        );
        one_naming(
            &problems_after(|r| r.hostile.as_mut().unwrap().hostile_tasks = 0),
            "hostile",
            "no hostile task ran",
        );
    }
}
