"""Circuit analysis over stored graphs: supernode suggestions and graph diffs.

Reads graphs (and features' decoder directions and explanations) and answers over the API; a
diff's causal test is an ordinary intervention run through `steering`. No torch here: the web
process serves these.
"""
