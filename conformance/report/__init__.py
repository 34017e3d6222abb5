"""What a run hands over: compliance.json (+ schema), its signature, and the HTML report built from it."""
