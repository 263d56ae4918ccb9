"""Studies (spec -> plan -> executors -> tables -> report), the task suite, the robustness report."""
