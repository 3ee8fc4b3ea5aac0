"""Agno's import path for workflows (``from nbsessions.workflow import Workflow, Step``); the code is in ``runs/``."""

from nbsessions.records.schema import StepOutput
from nbsessions.runs.workflows.blocks import Condition, Loop, Parallel, Router, Steps
from nbsessions.runs.workflows.steps import Step, StepInput, WorkflowError
from nbsessions.runs.workflows.workflow import Workflow
from nbsessions.runs.workflows.workflow_agent import WorkflowAgent

__all__ = ["Condition", "Loop", "Parallel", "Router", "Step", "StepInput", "StepOutput", "Steps", "Workflow",
           "WorkflowAgent", "WorkflowError"]
