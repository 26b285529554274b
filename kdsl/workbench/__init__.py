"""The rule writer's workbench: ``kdsl serve`` (session.py holds the data and the evaluation,
app.py the routes, static/ the page: plain HTML, CSS and JavaScript, no build step)."""
