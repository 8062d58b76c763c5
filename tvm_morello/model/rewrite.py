"""One pass over a model's ``main`` that lets a rule replace calls: the shared walk of the model's Relax rewrites."""
from __future__ import annotations


def rewrite_main(mod, rule):
    """``mod`` with each call of ``main`` for which ``rule(call, builder, lookup)`` returns an expression replaced
    by it, calls visited operands first (a rule sees the rewritten operands). ``builder`` emits intermediate
    values (``builder.emit``) and adds functions (``builder.add_func``); ``lookup`` gives the value a variable is
    bound to. Values no longer used are removed."""
    from tvm import relax

    @relax.expr_functor.mutator
    class Rewriter(relax.PyExprMutator):
        def visit_call_(self, call):
            call = self.visit_expr_post_order(call)
            replaced = rule(call, self.builder_, self.lookup_binding)
            return call if replaced is None else replaced

    rewriter = Rewriter(mod)
    rewriter.builder_.update_func(mod.get_global_var("main"), rewriter.visit_expr(mod["main"]))
    return relax.transform.DeadCodeElimination()(rewriter.builder_.get())
