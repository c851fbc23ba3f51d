"""FireWorks orchestration: the workflow maker, submission, local rlaunch workers."""
