# Cython declarations for the compiled build: models.contract.ApiCall as a C struct.
#
# ApiCall is a msgspec Struct: its fields are slots (member descriptors) at fixed
# offsets, in the order CPython lays out sorted slot names. Declared here as an
# external extension type, a typed ``ev.account_id`` compiles to a read of the
# slot instead of a generic attribute lookup (about 20 ns less per read, some 20
# reads per event). Cython checks the type's size when a module cimporting this
# is imported, and models.wire.check_apicall_layout checks every slot's offset and kind, so a
# msgspec release that laid the struct out otherwise fails loudly at import
# (`make install` rebuilds; EXW_PURE_PYTHON=1 runs without the build).
# Fields are never NULL: msgspec fills every field (defaults included) when it
# decodes or constructs an ApiCall.

cdef extern from *:
    """
    #include <stddef.h>
    #include <structmember.h>
    typedef struct {
        PyObject_HEAD
        PyObject *access_path;
        PyObject *account_created_at;
        PyObject *account_created_t;
        PyObject *account_id;
        PyObject *api_key_id;
        PyObject *asn;
        PyObject *client_ip;
        PyObject *cot;
        PyObject *dropped_completion;
        PyObject *dropped_content;
        PyObject *dropped_messages;
        PyObject *dropped_prompt;
        PyObject *dropped_text;
        PyObject *event_id;
        PyObject *features;
        PyObject *input_tokens;
        PyObject *latency_ms;
        PyObject *model;
        PyObject *org_id;
        PyObject *output_tokens;
        PyObject *payment_fingerprint;
        PyObject *prompt_simhash;
        PyObject *raw_text_dropped;
        PyObject *simhash;
        PyObject *status;
        PyObject *t;
        PyObject *task;
        PyObject *tls_fingerprint;
        PyObject *ts;
        PyObject *user_agent;
        PyObject *v;
    } ExwApiCall;

    static CYTHON_UNUSED int exw_apicall_layout(PyObject *cls) {
        static const struct { const char *name; Py_ssize_t offset; } fields[] = {
        {"access_path", offsetof(ExwApiCall, access_path)},
        {"account_created_at", offsetof(ExwApiCall, account_created_at)},
        {"account_created_t", offsetof(ExwApiCall, account_created_t)},
        {"account_id", offsetof(ExwApiCall, account_id)},
        {"api_key_id", offsetof(ExwApiCall, api_key_id)},
        {"asn", offsetof(ExwApiCall, asn)},
        {"client_ip", offsetof(ExwApiCall, client_ip)},
        {"cot", offsetof(ExwApiCall, cot)},
        {"dropped_completion", offsetof(ExwApiCall, dropped_completion)},
        {"dropped_content", offsetof(ExwApiCall, dropped_content)},
        {"dropped_messages", offsetof(ExwApiCall, dropped_messages)},
        {"dropped_prompt", offsetof(ExwApiCall, dropped_prompt)},
        {"dropped_text", offsetof(ExwApiCall, dropped_text)},
        {"event_id", offsetof(ExwApiCall, event_id)},
        {"features", offsetof(ExwApiCall, features)},
        {"input_tokens", offsetof(ExwApiCall, input_tokens)},
        {"latency_ms", offsetof(ExwApiCall, latency_ms)},
        {"model", offsetof(ExwApiCall, model)},
        {"org_id", offsetof(ExwApiCall, org_id)},
        {"output_tokens", offsetof(ExwApiCall, output_tokens)},
        {"payment_fingerprint", offsetof(ExwApiCall, payment_fingerprint)},
        {"prompt_simhash", offsetof(ExwApiCall, prompt_simhash)},
        {"raw_text_dropped", offsetof(ExwApiCall, raw_text_dropped)},
        {"simhash", offsetof(ExwApiCall, simhash)},
        {"status", offsetof(ExwApiCall, status)},
        {"t", offsetof(ExwApiCall, t)},
        {"task", offsetof(ExwApiCall, task)},
        {"tls_fingerprint", offsetof(ExwApiCall, tls_fingerprint)},
        {"ts", offsetof(ExwApiCall, ts)},
        {"user_agent", offsetof(ExwApiCall, user_agent)},
        {"v", offsetof(ExwApiCall, v)},
        };
        PyTypeObject *type;
        size_t i;
        if (!PyType_Check(cls)) {
            PyErr_SetString(PyExc_TypeError, "ApiCall layout: not a type");
            return -1;
        }
        type = (PyTypeObject *)cls;
        if (type->tp_basicsize != (Py_ssize_t)sizeof(ExwApiCall)) {
            PyErr_SetString(PyExc_ImportError, "ApiCall layout: the struct's size changed "
                            "(another msgspec release?): rebuild the compiled modules "
                            "(make install) or set EXW_PURE_PYTHON=1");
            return -1;
        }
        for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            PyObject *d = PyDict_GetItemString(type->tp_dict, fields[i].name);
            PyMemberDef *m;
            if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type)) {
                PyErr_Format(PyExc_ImportError, "ApiCall layout: %s is not a slot", fields[i].name);
                return -1;
            }
            m = ((PyMemberDescrObject *)d)->d_member;
            if (m->type != T_OBJECT_EX || m->offset != fields[i].offset) {
                PyErr_Format(PyExc_ImportError, "ApiCall layout: slot %s moved (another msgspec "
                             "release?): rebuild the compiled modules (make install) or set "
                             "EXW_PURE_PYTHON=1", fields[i].name);
                return -1;
            }
        }
        return 0;
    }
    """
    int check_layout "exw_apicall_layout" (object cls) except -1

    ctypedef class models.contract.ApiCall [object ExwApiCall, check_size error]:
        cdef object access_path
        cdef object account_created_at
        cdef object account_created_t
        cdef object account_id
        cdef object api_key_id
        cdef object asn
        cdef object client_ip
        cdef object cot
        cdef object dropped_completion
        cdef object dropped_content
        cdef object dropped_messages
        cdef object dropped_prompt
        cdef object dropped_text
        cdef object event_id
        cdef object features
        cdef object input_tokens
        cdef object latency_ms
        cdef object model
        cdef object org_id
        cdef object output_tokens
        cdef object payment_fingerprint
        cdef object prompt_simhash
        cdef object raw_text_dropped
        cdef object simhash
        cdef object status
        cdef object t
        cdef object task
        cdef object tls_fingerprint
        cdef object ts
        cdef object user_agent
        cdef object v
